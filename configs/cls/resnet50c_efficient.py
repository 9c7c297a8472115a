# Table 5 "ResNet-50-C": B + deep stem (three 3x3 convs).
_base_ = './resnet50b_efficient.py'
model = dict(backbone=dict(variant='C'))
