# Table 6 "+ distillation w/o mixup" for MobileNet at Fashion-MNIST scale: mobilenet_cosine_ls_kd.py + the overlay.
_base_ = ['./mobilenet_cosine_ls_kd.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
# the grid's teacher at this scale; its checkpoint is the one tools/transfer_grid.py trained, passed as
# --cfg-options model.distill.teacher_checkpoint=FILE (without it the run stops with an error)
model = dict(distill=dict(teacher_config='{{fileDirname}}/fashion_teacher.py', teacher_checkpoint=None))
