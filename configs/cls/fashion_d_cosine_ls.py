# Table 6 "+ label smoothing" at Fashion-MNIST scale: resnet50d_cosine_ls.py + the overlay.
_base_ = ['./resnet50d_cosine_ls.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
