# Table 6 "+ cosine decay" for MobileNet (1.0) (paper 72.83 %), as resnet50d_cosine.py: eq. (1) per iteration
# after the warmup.
_base_ = './mobilenet_efficient.py'
param_scheduler = [
    dict(type='LinearWarmupLR', by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, eta_min=0.0, convert_to_iter_based=True),
]
