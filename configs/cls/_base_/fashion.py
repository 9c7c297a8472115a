# The Fashion-MNIST scale (CPU) as an overlay of the paper's pretraining rows: it changes sizes, schedule
# lengths, widths and data roots, nothing of a recipe. A fashion row is its paper row plus this file:
#
#   _base_ = ['./resnet50d_cosine.py', './_base_/fashion.py']
#   _base_.merge(_base_.pop('fashion')[_base_.model.backbone.type])  # the overlay for the row's network
#   param_scheduler = [dict(s, **_base_.fashion_epochs[s.type]) for s in _base_.param_scheduler]
#
# and only the lines in which the row differs at this scale (each says why). Why two lines and not just the
# base list: mmengine merges a config into its bases but never one base into another (two bases setting the
# same key is a KeyError), and a list (pipeline, param_scheduler) is replaced whole. So this file defines new
# names only; the row merges them into what its paper row gives (ConfigDict.merge: inheritance's own merge,
# _delete_ included) and keeps the paper's schedule, its epochs moved to this scale.
# tests/test_fashion_overlay.py checks that every fashion row resolves to its paper row but for these keys.
# The working names below are deleted at the end: a base may not set a key that the paper row sets too.
_base_ = '../../_base_/fashion.py'  # classes and widths, shared with the det and seg configs

data_root = 'data/fashion/imagenet'
size = 32  # the 28 px items, upscaled
mean = [123.68, 116.779, 103.939]  # the paper's normalisation, as _base_/imagenet.py
std = [58.393, 57.12, 57.375]
# Stated once for every row, as the fashion runs were made: the paper's augmentation per image in the workers
# (colour jitter, lighting, normalisation as separate transforms, not the batched Photometric step), with a
# 25-100 % crop area (an 8 % crop of a 28 px item would leave 8 px of it); val: resize to 32 px. The centre crop
# after it changes nothing on the square 28 px items the runs used; it keeps the val batches stackable on data
# whose images are not all square (engine/valid_values.py refuses a val pipeline without a fixed output size).
train_pipeline = [
    dict(type='torchvision/RandomResizedCrop', size=size, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
    dict(type='torchvision/RandomHorizontalFlip', p=0.5),
    dict(type='torchvision/ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='torchvision/ToDtype', dtype='float32', scale=False),
    dict(type='PCALighting', alphastd=0.1, value_range=255),
    dict(type='torchvision/Normalize', mean=mean, std=std),
]
val_pipeline = [
    dict(type='torchvision/Resize', size=size, antialias=True),
    dict(type='torchvision/CenterCrop', size=size),
    dict(type='torchvision/ToDtype', dtype='float32', scale=False),
    dict(type='torchvision/Normalize', mean=mean, std=std),
]
loader = dict(num_workers=2, persistent_workers=True, pin_memory=False)  # 2 CPU cores, no accelerator
val_dataloader = dict(batch_size=256, **loader,
                      dataset=dict(data_root=data_root, classes=_base_.fashion_classes, pipeline=val_pipeline))
common = dict(
    data_root=data_root, train_pipeline=train_pipeline, val_pipeline=val_pipeline,
    # 2x the paper's per-process batch of the efficient rows (128), one process; lr follows by auto_scale_lr
    train_dataloader=dict(batch_size=256, **loader,
                          dataset=dict(data_root=data_root, classes=_base_.fashion_classes, pipeline=train_pipeline)),
    val_dataloader=val_dataloader, test_dataloader=val_dataloader,
    train_cfg=dict(max_epochs=2),  # the paper's 120
    default_hooks=dict(logger=dict(interval=50), checkpoint=dict(max_keep_ckpts=1)),
    env_cfg=dict(cudnn_benchmark=False))
# the overlay per network (the paper row's model.backbone.type): ResNet-50 -> ResNet-18 layout at CPU width,
# MobileNet (1.0) -> width 0.25 (GluonCV's smallest, 0.2M parameters)
num_classes = len(_base_.fashion_classes)
fashion = dict(
    BagResNet=dict(common, model=dict(num_classes=num_classes, backbone=dict(depth=18, **_base_.fashion_widths))),
    BagMobileNetV1=dict(common, model=dict(num_classes=num_classes, backbone=dict(width=0.25))))
# the paper's epoch numbers in the schedules at this scale: 5 warmup epochs -> 0.2, step at 30/60/90 -> 1
fashion_epochs = dict(LinearWarmupLR=dict(end=0.2), CosineAnnealingLR=dict(begin=0.2),
                      MultiStepLR=dict(milestones=[1]))
del data_root, size, mean, std, train_pipeline, val_pipeline, loader, val_dataloader, common, \
    num_classes  # what is left: fashion, fashion_epochs and the shared names
