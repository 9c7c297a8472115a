# A CPU-sized FCN-D8 for a quick end-to-end check on a small ADEChallengeData2016 tree (the tests use it):
# ResNet-18-D at quarter width, 64x64 crops, 60 iterations, batch 8. Same model family, data
# classes, checks and metric as the full recipe; only sizes and the schedule shrink.
_base_ = './_base_/fcn_bagresnet50-d8_ade20k.py'

crop_size = (64, 64)
width = 16  # base_channels: stage widths 16-32-64-128 (BasicBlock, expansion 1)
max_iters = 60

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(depth=18, stem_channels=16, base_channels=width,
                  zero_gamma=False),  # from scratch as measured (mmseg's default would zero-init residuals)
    decode_head=dict(in_channels=width * 8, channels=32),
    auxiliary_head=dict(in_channels=width * 4, channels=16))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegMap', num_classes=150),
    dict(type='RandomResize', scale=(96, 96), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegMap', num_classes=150),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=8, num_workers=2, persistent_workers=True,
                        dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))
randomness = dict(seed=0)
