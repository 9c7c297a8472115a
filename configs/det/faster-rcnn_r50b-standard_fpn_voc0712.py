# Table 7, row "B-standard": Faster R-CNN on VOC 07+12 from ResNet-50-B, baseline recipe (Section 2.1)
# (paper: 77.54 mAP on VOC07 test).
# The file is the pretraining tool's exported backbone; --pretrained FILE overrides it.
_base_ = './_base_/faster-rcnn_bagresnet50_fpn_voc0712.py'
model = dict(
    backbone=dict(
        variant='B',  # the architecture of the pretrained network
        init_cfg=dict(_delete_=True, type='Pretrained', checkpoint='work_dirs/resnet50b_baseline/backbone.pth')))
