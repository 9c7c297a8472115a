# Table 5 "ResNet-50-B": stride 2 on the 3x3 of path A.
_base_ = './resnet50_efficient.py'
model = dict(backbone=dict(variant='B'))
