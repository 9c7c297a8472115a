# Table 2 "baseline" for MobileNet (1.0) (paper 69.03 % top-1; 70.6 in the MobileNet paper): the recipe of
# resnet50_baseline.py (batch 256, Nesterov SGD lr 0.1, step decay, Xavier init, the paper's augmentation,
# 224 px) on MobileNet v1 at width 1.0 (ReLU, as GluonCV's mobilenet1.0).
_base_ = './resnet50_baseline.py'
model = dict(backbone=dict(_delete_=True, type='BagMobileNetV1', width=1.0, out_indices=(3,), init='xavier',
                            channels_last=True))  # measured faster on CPU (fp32 1.06x, bf16 1.4x)
