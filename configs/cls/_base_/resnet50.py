# The paper's baseline network: ResNet-50 (variant A), Xavier init, 1000 classes, plain cross entropy.
model = dict(
    type='BagClassifier',
    # channels_last: NHWC convolutions, a speed switch (not a trick of the paper), on wherever measured faster:
    # CPU fp32 and bf16 (README, make bench / bench-e2e); set False to train in NCHW
    backbone=dict(type='BagResNet', depth=50, variant='A', out_indices=(3,), init='xavier', zero_gamma=False,
                  channels_last=True),
    num_classes=1000,
    label_smoothing=0.0,
    mixup_alpha=0.0)
# distillation: model.distill = dict(teacher_config=..., teacher_checkpoint=..., temperature=20.0, hard_weight=0.5)
