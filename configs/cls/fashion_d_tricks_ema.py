# Every trick + EMA of the weights at Fashion-MNIST scale: resnet50d_tricks_ema.py + the overlay, as
# fashion_d_tricks.py is resnet50d_tricks.py + the overlay. The EMA's momentum is the paper row's: per optimizer
# step, annealed as 10 / (10 + t) (the last ~10 % of the steps taken), which is 0.014 at the end of these 3 epochs
# (702 steps of 256), so here the EMA spans about the last 70 steps.
_base_ = ['./resnet50d_tricks_ema.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
train_cfg = dict(max_epochs=3)  # the paper's mixup rows train 200/120 as long (200 epochs, not 120)
# the grid's teacher at this scale; its checkpoint is the one tools/transfer_grid.py trained, passed as
# --cfg-options model.distill.teacher_checkpoint=FILE (without it the run stops with an error)
model = dict(distill=dict(teacher_config='{{fileDirname}}/fashion_teacher.py', teacher_checkpoint=None))
