# Table 8, row "+ smoothing": FCN-D8 on ADE20K from ResNet-50-D, ... + label smoothing.
# The file is the pretraining tool's exported backbone; --pretrained FILE overrides it.
_base_ = './_base_/fcn_bagresnet50-d8_ade20k.py'
model = dict(
    backbone=dict(
        init_cfg=dict(type='Pretrained', checkpoint='work_dirs/resnet50d_cosine_ls/backbone.pth')))
