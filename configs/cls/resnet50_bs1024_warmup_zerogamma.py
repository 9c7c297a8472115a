# Table 4 "+ Zero gamma": the last BN of every residual block starts at gamma = 0.
_base_ = './resnet50_bs1024_warmup.py'
model = dict(backbone=dict(zero_gamma=True))
