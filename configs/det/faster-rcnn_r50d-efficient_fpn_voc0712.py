# Table 7, row "D-efficient": Faster R-CNN on VOC 07+12 from ResNet-50-D, efficient training (Section 3)
# (paper: 78.3 mAP on VOC07 test).
# The file is the pretraining tool's exported backbone; --pretrained FILE overrides it.
_base_ = './_base_/faster-rcnn_bagresnet50_fpn_voc0712.py'
model = dict(
    backbone=dict(
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint='work_dirs/resnet50d_efficient/backbone.pth')))
