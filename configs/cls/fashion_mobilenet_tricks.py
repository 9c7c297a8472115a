# Table 6 "+ distillation w/ mixup" for MobileNet at Fashion-MNIST scale (mobilenet_tricks.py): every trick.
_base_ = './fashion_mobilenet_cosine_ls_mixup.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/fashion_teacher.py',
                          teacher_checkpoint='work_dirs/fashion_teacher/epoch_2.pth',
                          temperature=20.0, hard_weight=0.5))
