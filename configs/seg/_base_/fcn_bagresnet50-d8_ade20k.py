# FCN with a dilated ResNet-50-D (output stride 8) on ADE20K, 512x512 crops, 80k iterations on 4 GPUs x 4
# images: mmseg's own FCN R-50-D8 recipe (model, data, schedule, IoUMetric); only the backbone is ours.
# Table 8 rows (configs/seg/fcn_r50*.py) differ only in the pretrained backbone file.
_base_ = 'mmseg::fcn/fcn_r50-d8_4xb4-80k_ade20k-512x512.py'
custom_imports = dict(imports=['backbones', 'engine', 'segmentation'], allow_failed_imports=False)
runner_type = 'BagRunner'  # checkpoint policy + preflight checks, also under mmdet's/mmseg's own tools/train.py
default_hooks = dict(checkpoint=dict(type='BagCheckpointHook'))  # rotation that keeps the last complete one
log_processor = dict(type='ThroughputLogProcessor')  # img/s next to the ETA (engine/throughput.py)
optim_wrapper = dict(optimizer=dict(fused=True))  # one kernel per update step (see configs/cls/_base_/schedule_step.py)

num_classes = 150
crop_size = (512, 512)
data_root = 'data/ade/ADEChallengeData2016'
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    pretrained=None,  # EncoderDecoder copies this into the backbone; ours loads through backbone.init_cfg
    backbone=dict(
        _delete_=True,
        type='bagtricks.BagResNet',
        defaults='mmseg',  # what mmseg's ResNet does where this config is silent
        depth=50,
        variant='D',
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        contract_dilation=True,
        norm_cfg=norm_cfg,
        norm_eval=False,
        channels_last=False))  # NHWC is not faster for the dilated stages on CPU (0.95x measured; README)  # init_cfg: set by each Table 8 row, or by --pretrained

# mmseg's ADE20K pipelines with CheckSegMap after LoadAnnotations (size and label values per file)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegMap', num_classes=num_classes),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),  # after Resize: metrics at the original size
    dict(type='CheckSegMap', num_classes=num_classes),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    dataset=dict(type='CheckedADE20KDataset', data_root=data_root,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CheckedADE20KDataset', data_root=data_root,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# aAcc + mIoU (+ mAcc), the per-class table in the log, and per-class values kept for the results file
val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
custom_hooks = [dict(type='ResultsHook')]  # <work_dir>/{val,test}_results.json, the one results schema
