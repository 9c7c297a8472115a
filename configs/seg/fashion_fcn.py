# FCN-D8 at Fashion-MNIST scale: the CPU-sized FCN on the ADEChallengeData2016 tree of composed Fashion-MNIST
# scenes (tools/prepare_fashion.py): 11 classes (background + 10 items; label 0 = unlabelled, as in ADE20K),
# with the backbone of the fashion pretraining configs (ResNet-18 layout, stem 32, width 16, dilated to
# output stride 8). The variant and weights come from --pretrained (tools/transfer_grid.py passes both).
_base_ = ['./fcn_r18d-tiny_ade20k-cpu.py', '../_base_/fashion.py']  # + classes and widths at this scale

data_root = 'data/fashion/ADEChallengeData2016'
classes = ('background', ) + _base_.fashion_classes
crop_size = (128, 128)
max_iters = 400

# Background is about 90 % of these scenes' pixels (ADE20K has no such class), so it is weighted 0.25 in the
# loss; with equal weights 400 iterations leave every pixel background (mIoU 8, measured). The training crops
# are never padded, since mmseg 1.2.2's class-weighted loss cannot take the padding's ignore label.
class_weight = [0.25] + [1.0] * (len(classes) - 1)
model = dict(data_preprocessor=dict(size=crop_size),
             backbone=_base_.fashion_widths,
             decode_head=dict(num_classes=len(classes), loss_decode=dict(class_weight=class_weight)),
             auxiliary_head=dict(num_classes=len(classes), loss_decode=dict(class_weight=class_weight)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegMap', num_classes=len(classes)),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegMap', num_classes=len(classes)),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(type='ADEFormatDataset', data_root=data_root, metainfo=dict(classes=classes),
                                          pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(type='ADEFormatDataset', data_root=data_root, metainfo=dict(classes=classes),
                                        pipeline=test_pipeline))
test_dataloader = val_dataloader
# AdamW, as the CPU-sized detector: SGD at this scale learns too slowly from few iterations
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.0001))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=max_iters))
