# A small Faster R-CNN for the CPU: ResNet-18-D at 1/4 width, 64-channel FPN, 128-px images, trained
# from scratch by iterations. The detection pipeline's smoke test (tests/test_det_*.py) and the
# README's CPU result. Data: any VOCdevkit tree with VOC2007 trainval/test splits, e.g. the generated
# one from `python tests/det_helpers.py data/voc-synthetic`.
_base_ = './_base_/faster-rcnn_bagresnet50_fpn_voc0712.py'

data_root = 'data/voc-synthetic/VOCdevkit/'
img_scale = (128, 128)
max_iters = 300

model = dict(
    backbone=dict(depth=18, stem_channels=16, base_channels=16, frozen_stages=-1, norm_eval=False,
                  zero_gamma=False),  # from scratch as measured (mmdet's default would zero-init residuals)
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(bbox_roi_extractor=dict(out_channels=64, roi_layer=dict(sampling_ratio=2)),
                  bbox_head=dict(in_channels=64, fc_out_channels=128)),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    _delete_=True,
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # no restart (and pause) at each pass
    dataset=dict(type='StrictVOCDataset', data_root=data_root, ann_file='VOC2007/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root='VOC2007/'), pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=8)))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=20, end=max_iters, eta_min=1e-5),
]
# from scratch, a small detector learns far faster with AdamW than with mmdet's SGD recipe
optim_wrapper = dict(_delete_=True, type='OptimWrapper', clip_grad=dict(max_norm=10.0),
                     optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.0001))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
