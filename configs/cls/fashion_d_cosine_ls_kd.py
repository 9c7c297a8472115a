# Table 6 "+ distillation w/o mixup" at Fashion-MNIST scale (resnet50d_cosine_ls_kd.py), T = 20, hard weight 0.5.
# The teacher checkpoint is trained by tools/transfer_grid.py (or: tools/pretrain.py configs/cls/fashion_teacher.py).
_base_ = './fashion_d_cosine_ls.py'
model = dict(distill=dict(teacher_config='{{fileDirname}}/fashion_teacher.py',
                          teacher_checkpoint='work_dirs/fashion_teacher/epoch_2.pth',
                          temperature=20.0, hard_weight=0.5))
