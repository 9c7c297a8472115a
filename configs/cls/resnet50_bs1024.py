# Table 4 "linear scaling": batch 1024 (8 x 128); auto_scale_lr turns lr 0.1 into 0.4.
_base_ = './resnet50_baseline.py'
train_dataloader = dict(batch_size=128)
