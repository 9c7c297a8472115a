# Table 6 "+ cosine decay": eq. (1) per iteration after the warmup (end and T_max follow train_cfg.max_epochs).
_base_ = './resnet50d_efficient.py'
param_scheduler = [
    dict(type='LinearWarmupLR', by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=5, eta_min=0.0, convert_to_iter_based=True),
]
