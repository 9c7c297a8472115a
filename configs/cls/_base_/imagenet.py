# ImageNet folders (train/<class>/*.JPEG, val/<class>/*.JPEG) with the paper's augmentation (Section 2.1).
# Batch 32 per process: 8 processes give the baseline's 256.
data_root = 'data/imagenet'
# the paper's normalisation, 0-255 scale (ToDtype keeps 0-255, PCALighting is scaled to it)
mean = [123.68, 116.779, 103.939]
std = [58.393, 57.12, 57.375]

train_pipeline = [
    dict(type='RandomResizedCrop', size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
    dict(type='RandomHorizontalFlip', p=0.5),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='ToDtype', dtype='float32', scale=False),
    dict(type='PCALighting', alphastd=0.1, value_range=255),
    dict(type='Normalize', mean=mean, std=std),
]
val_pipeline = [
    dict(type='Resize', size=256, antialias=True),  # shorter side
    dict(type='CenterCrop', size=224),
    dict(type='ToDtype', dtype='float32', scale=False),
    dict(type='Normalize', mean=mean, std=std),
]

train_dataloader = dict(
    batch_size=32, num_workers=8, persistent_workers=True, pin_memory=True, drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True), collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=data_root, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False), collate_fn=dict(type='default_collate'),
    dataset=dict(type='ImageNetFolder', data_root=data_root, split='val', pipeline=val_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
