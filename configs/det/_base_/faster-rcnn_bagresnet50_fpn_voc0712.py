# Faster R-CNN R-50-FPN on Pascal VOC 07+12 trainval, tested on VOC07 test: mmdet's own recipe (1000x600,
# 4 epochs over 3x repeated data = 12 epochs, SGD lr 0.01 for 8 GPUs x 2 images, 11-point VOC07 mAP).
# Only the backbone is ours (mmdet's ResNet keyword arguments are kept: frozen stem + stage 1, BN in
# eval mode). Copy this file to start a new experiment; the Table 7 rows (configs/det/faster-rcnn_r50*.py)
# differ only in the pretrained backbone file.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['backbones', 'engine', 'detection'], allow_failed_imports=False)
runner_type = 'BagRunner'  # checkpoint policy + preflight checks, also under mmdet's/mmseg's own tools/train.py
default_hooks = dict(checkpoint=dict(type='BagCheckpointHook'))  # rotation that keeps the last complete one
log_processor = dict(type='ThroughputLogProcessor')  # img/s next to the ETA (engine/throughput.py)
optim_wrapper = dict(optimizer=dict(fused=True))  # one kernel per update step (see configs/cls/_base_/schedule_step.py)

data_root = 'data/VOCdevkit/'

model = dict(
    backbone=dict(
        type='bagtricks.BagResNet',
        defaults='mmdet',  # what mmdet's ResNet does where this config is silent (norm_eval, zero gamma, stem)
        variant='D',
        channels_last=True,  # NHWC convolutions: 1.16x per backbone step at 1000x600 on CPU fp32 (docs/measurements.md)
        init_cfg=None))  # replaces mmdet's torchvision://resnet50; set by each row or by --pretrained

# mmdet's VOC datasets as StrictVOCDataset (errors name the missing/broken file; labelme XML loads)
train_dataloader = dict(
    dataset=dict(dataset=dict(datasets=[
        dict(type='StrictVOCDataset', data_root=data_root, ann_file=f'{year}/ImageSets/Main/trainval.txt',
             data_prefix=dict(sub_data_root=f'{year}/'), pipeline=_base_.train_pipeline,
             filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32))
        for year in ('VOC2007', 'VOC2012')
    ])))
val_dataloader = dict(dataset=dict(type='StrictVOCDataset', data_root=data_root))
test_dataloader = val_dataloader

# VOCMetric (eval_mode='11points' from mmdet's config; 'area' via --eval-mode) + the per-class AP kept
val_evaluator = dict(type='VOCPerClassMetric')
test_evaluator = val_evaluator
custom_hooks = [dict(type='ResultsHook')]  # <work_dir>/{val,test}_results.json, the one results schema
