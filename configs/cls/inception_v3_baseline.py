# Table 2 "baseline" for Inception-V3 (paper 77.32 % top-1; 78.8 in the Inception-V3 paper): the recipe of
# resnet50_baseline.py (batch 256, Nesterov SGD lr 0.1, step decay, Xavier init, the paper's augmentation)
# on Inception-V3 at 299 px.
_base_ = ['./resnet50_baseline.py', './_base_/inception_v3.py']
model = dict(backbone={{_base_.inception_v3}}, dropout={{_base_.inception_dropout}})
train_dataloader = dict(dataset=dict(pipeline={{_base_.inception_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.inception_val_pipeline}}))
test_dataloader = val_dataloader
