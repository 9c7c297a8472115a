# Table 4 "efficient" for Inception-V3 (paper 77.50 %; also the start of its Table 6 column): the recipe of
# resnet50_efficient.py (batch 1024 with linear lr scaling, 5 warmup epochs, no bias decay, mixed precision)
# on Inception-V3 at 299 px. Zero gamma is n/a: there is no residual block (the trick table says so).
_base_ = ['./resnet50_efficient.py', './_base_/inception_v3.py']
model = dict(backbone={{_base_.inception_v3}}, dropout={{_base_.inception_dropout}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.inception_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.inception_val_pipeline}}))
test_dataloader = val_dataloader
