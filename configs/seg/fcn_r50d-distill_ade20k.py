# Table 8, row "+ distill w/o mixup": FCN-D8 on ADE20K from ResNet-50-D, ... + distillation.
# The file is the pretraining tool's exported backbone; --pretrained FILE overrides it.
_base_ = './_base_/fcn_bagresnet50-d8_ade20k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='work_dirs/resnet50d_cosine_ls_kd/backbone.pth')))
