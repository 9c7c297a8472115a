# Fashion-MNIST scale of "D-efficient" (Tables 5-8): the efficient recipe of resnet50_efficient.py on ResNet-D,
# i.e. 4x batch with linear lr scaling, linear warmup (0.2 of 2 epochs here, 5 of 120 in the paper), zero-gamma,
# no bias decay and mixed precision.
_base_ = './fashion_b_standard.py'
train_dataloader = dict(batch_size=256)
param_scheduler = [
    dict(type='LinearWarmupLR', by_epoch=True, begin=0, end=0.2, convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1),
]
model = dict(backbone=dict(variant='D', zero_gamma=True))
optim_wrapper = dict(type='MixedPrecisionOptimWrapper', paramwise_cfg=dict(bias_decay_mult=0.0, norm_decay_mult=0.0))
