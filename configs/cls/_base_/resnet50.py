# The paper's baseline network: ResNet-50 (variant A), Xavier init, 1000 classes, plain cross entropy.
model = dict(
    type='BagClassifier',
    backbone=dict(type='BagResNet', depth=50, variant='A', out_indices=(3,), init='xavier', zero_gamma=False),
    num_classes=1000,
    label_smoothing=0.0,
    mixup_alpha=0.0)
# distillation: model.distill = dict(teacher_config=..., teacher_checkpoint=..., temperature=20.0, hard_weight=0.5)
