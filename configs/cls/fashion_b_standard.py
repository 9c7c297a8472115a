# Tables 7/8 "B-standard" (ResNet-B, baseline recipe) at Fashion-MNIST scale: resnet50b_baseline.py + the overlay.
_base_ = ['./resnet50b_baseline.py', './_base_/fashion.py']
_base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay (_base_/fashion.py says why so)
param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
train_dataloader = dict(batch_size=64)  # the baseline's batch, 1/4 of the efficient rows' (paper: 256 vs 1024)
