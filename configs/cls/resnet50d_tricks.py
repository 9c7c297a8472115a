# Table 6 "+ distillation w/ mixup": every trick of the paper (79.29 % top-1 in the paper).
_base_ = './resnet50d_cosine_ls_mixup.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/resnet152d_teacher.py',
                          teacher_checkpoint='work_dirs/resnet152d_teacher/epoch_120.pth',
                          temperature=20.0, hard_weight=0.5))
