# The distillation teacher (Section 5.3): ResNet-152-D with cosine decay and label smoothing, 120 epochs.
_base_ = './resnet50d_cosine_ls.py'
model = dict(backbone=dict(depth=152))
