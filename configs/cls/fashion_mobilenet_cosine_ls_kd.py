# Table 6 "+ distillation w/o mixup" for MobileNet at Fashion-MNIST scale (mobilenet_cosine_ls_kd.py): the
# grid's ResNet-D teacher (fashion_teacher.py, another family, as the paper's ResNet-152-D), T = 20, hard weight 0.5.
_base_ = './fashion_mobilenet_cosine_ls.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/fashion_teacher.py',
                          teacher_checkpoint='work_dirs/fashion_teacher/epoch_2.pth',
                          temperature=20.0, hard_weight=0.5))
