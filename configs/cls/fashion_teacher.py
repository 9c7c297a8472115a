# The distillation teacher (cosine + smoothing, deeper) at Fashion-MNIST scale: resnet152d_teacher.py + the overlay.
_base_ = ['./resnet152d_teacher.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
model = dict(backbone=dict(depth=34))  # deeper than the students' 18, as the paper's 152 against 50
