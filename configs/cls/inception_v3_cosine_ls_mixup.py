# Table 6 "+ mixup w/o distillation" for Inception-V3 (paper 78.77 %), as resnet50d_cosine_ls_mixup.py:
# alpha 0.2, one lambda per batch, 200 epochs instead of 120.
_base_ = './inception_v3_cosine_ls.py'
model = dict(mixup_alpha=0.2)
train_cfg = dict(max_epochs=200)
