# Table 6 "+ cosine decay" for MobileNet at Fashion-MNIST scale: mobilenet_cosine.py + the overlay.
_base_ = ['./mobilenet_cosine.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
