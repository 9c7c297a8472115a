# "ResNet-50-B standard" (the B-standard row of Tables 7 and 8): the baseline recipe on ResNet-B.
_base_ = './resnet50_baseline.py'
model = dict(backbone=dict(variant='B'))
