# Table 4 "+ LR warmup": lr rises linearly from 0 over the first 5 epochs, per iteration.
_base_ = './resnet50_bs1024.py'
param_scheduler = [
    dict(type='LinearWarmupLR', by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60, 90], gamma=0.1),
]
