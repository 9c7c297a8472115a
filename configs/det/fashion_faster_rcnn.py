# Faster R-CNN at Fashion-MNIST scale: the CPU-sized detector on the VOCdevkit of composed Fashion-MNIST scenes
# (tools/prepare_fashion.py), with the backbone of the fashion pretraining configs (ResNet-18 layout, stem 32,
# width 16). The variant and weights come from --pretrained (tools/transfer_grid.py passes both).
_base_ = ['./faster-rcnn_r18d-tiny_fpn_voc-cpu.py', '../_base_/fashion.py']  # + classes and widths at this scale

data_root = 'data/fashion/VOCdevkit/'
classes = _base_.fashion_classes
max_iters = 100

model = dict(backbone=_base_.fashion_widths,
             roi_head=dict(bbox_head=dict(num_classes=len(classes))))
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=max_iters, eta_min=1e-5),
]
default_hooks = dict(logger=dict(interval=25), checkpoint=dict(interval=max_iters))
