# Table 4 "efficient" for MobileNet (1.0) (paper 71.90 %; also the start of its Table 6 column): the recipe of
# resnet50_efficient.py (batch 1024 with linear lr scaling, 5 warmup epochs, no bias decay, mixed precision).
# Zero gamma is n/a: there is no residual block (the trick table says so).
_base_ = './resnet50_efficient.py'
model = dict(backbone=dict(_delete_=True, type='BagMobileNetV1', width=1.0, out_indices=(3,), init='xavier',
                            channels_last=True))  # measured faster on CPU (fp32 1.06x, bf16 1.4x)
