# Table 6 "+ distillation w/o mixup" for MobileNet (1.0) (paper 71.97 %: below + label smoothing; the teacher
# is of another family), as resnet50d_cosine_ls_kd.py: the ResNet-152-D teacher, T = 20, hard weight 0.5.
_base_ = './mobilenet_cosine_ls.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/resnet152d_teacher.py',
                          teacher_checkpoint='work_dirs/resnet152d_teacher/epoch_120.pth',
                          temperature=20.0, hard_weight=0.5))
