# Table 6 "+ cosine decay" at Fashion-MNIST scale (resnet50d_cosine.py): warmup, then eq. (1) per iteration.
_base_ = './fashion_d_efficient.py'
param_scheduler = [
    dict(type='LinearWarmupLR', by_epoch=True, begin=0, end=0.2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0.2, eta_min=0.0, convert_to_iter_based=True),
]
