# Table 6 "+ distillation w/ mixup" for Inception-V3 (paper 78.34 %), as resnet50d_tricks.py: every trick,
# the ResNet-152-D teacher fed the student's mixed 299 px batch.
_base_ = './inception_v3_cosine_ls_mixup.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/resnet152d_teacher.py',
                          teacher_checkpoint='work_dirs/resnet152d_teacher/epoch_120.pth',
                          temperature=20.0, hard_weight=0.5))
