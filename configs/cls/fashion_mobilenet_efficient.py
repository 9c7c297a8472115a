# Fashion-MNIST scale of MobileNet's "efficient" row (mobilenet_efficient.py; Tables 4 and 6): the fashion
# efficient recipe of fashion_d_efficient.py (4x batch with linear lr scaling, warmup, no bias decay, mixed
# precision, 32 px, 2 epochs) on MobileNet v1 at width multiplier 0.25 (GluonCV's smallest, mobilenet0.25:
# 8-256 channels, 0.2M parameters). Zero gamma is n/a (no residual block).
_base_ = './fashion_d_efficient.py'
model = dict(backbone=dict(_delete_=True, type='BagMobileNetV1', width=0.25, out_indices=(3,), init='xavier',
                            channels_last=True))  # measured faster here: fp32 3.9x, bf16 1.7x
