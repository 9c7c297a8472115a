# Table 6 "+ mixup w/o distillation" for MobileNet at Fashion-MNIST scale (mobilenet_cosine_ls_mixup.py):
# alpha 0.2 and 200/120 of the epochs.
_base_ = './fashion_mobilenet_cosine_ls.py'
model = dict(mixup_alpha=0.2)
train_cfg = dict(max_epochs=3)
