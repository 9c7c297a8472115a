# Table 6 "+ distillation w/ mixup" for MobileNet (1.0) (paper 72.51 %), as resnet50d_tricks.py: every trick.
_base_ = './mobilenet_cosine_ls_mixup.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/resnet152d_teacher.py',
                          teacher_checkpoint='work_dirs/resnet152d_teacher/epoch_120.pth',
                          temperature=20.0, hard_weight=0.5))
