# Table 6 "+ mixup w/o distillation" at Fashion-MNIST scale (resnet50d_cosine_ls_mixup.py): alpha 0.2 and
# 200/120 of the epochs.
_base_ = './fashion_d_cosine_ls.py'
model = dict(mixup_alpha=0.2)
train_cfg = dict(max_epochs=3)
