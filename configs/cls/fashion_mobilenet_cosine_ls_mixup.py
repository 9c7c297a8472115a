# Table 6 "+ mixup w/o distillation" for MobileNet at Fashion-MNIST scale: mobilenet_cosine_ls_mixup.py + the overlay.
_base_ = ['./mobilenet_cosine_ls_mixup.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
train_cfg = dict(max_epochs=3)  # the paper's mixup rows train 200/120 as long (200 epochs, not 120)
