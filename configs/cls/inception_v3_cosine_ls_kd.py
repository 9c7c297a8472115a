# Table 6 "+ distillation w/o mixup" for Inception-V3 (paper 78.26 %: below + label smoothing; the teacher is
# of another family), as resnet50d_cosine_ls_kd.py: the ResNet-152-D teacher, T = 20, hard weight 0.5.
# The teacher sees the student's own 299 px batch (its global pool takes any size).
_base_ = './inception_v3_cosine_ls.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/resnet152d_teacher.py',
                          teacher_checkpoint='work_dirs/resnet152d_teacher/epoch_120.pth',
                          temperature=20.0, hard_weight=0.5))
