# Table 8, row "B-standard": FCN-D8 on ADE20K from ResNet-50-B, baseline recipe (Section 2.1).
# The file is the pretraining tool's exported backbone; --pretrained FILE overrides it.
_base_ = './_base_/fcn_bagresnet50-d8_ade20k.py'
model = dict(
    backbone=dict(
        variant='B',  # the architecture of the pretrained network
        init_cfg=dict(type='Pretrained', checkpoint='work_dirs/resnet50b_baseline/backbone.pth')))
