# Table 6 "+ distillation w/o mixup": ResNet-152-D teacher (cosine + smoothing), T = 20, hard weight 0.5.
# Train the teacher first: tools/pretrain.py configs/cls/resnet152d_teacher.py
_base_ = './resnet50d_cosine_ls.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/resnet152d_teacher.py',
                          teacher_checkpoint='work_dirs/resnet152d_teacher/epoch_120.pth',
                          temperature=20.0, hard_weight=0.5))
