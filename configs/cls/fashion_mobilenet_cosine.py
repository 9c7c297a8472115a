# Table 6 "+ cosine decay" for MobileNet at Fashion-MNIST scale (mobilenet_cosine.py, fashion_d_cosine.py).
_base_ = './fashion_mobilenet_efficient.py'
param_scheduler = [
    dict(type='LinearWarmupLR', by_epoch=True, begin=0, end=0.2, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0.2, eta_min=0.0, convert_to_iter_based=True),
]
