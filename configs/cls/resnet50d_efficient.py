# Table 5/6 "ResNet-50-D": C + 2x2 average pool before the 1x1 conv of path B.
_base_ = './resnet50c_efficient.py'
model = dict(backbone=dict(variant='D'))
