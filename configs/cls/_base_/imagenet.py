# ImageNet folders (train/<class>/*.JPEG, val/<class>/*.JPEG) with the paper's augmentation (Section 2.1).
# Batch 32 per process: 8 processes give the baseline's 256.
data_root = 'data/imagenet'
# the paper's normalisation, 0-255 scale (ToDtype keeps 0-255, PCALighting is scaled to it)
mean = [123.68, 116.779, 103.939]
std = [58.393, 57.12, 57.375]

# Where the photometric part (colour jitter, PCA lighting, normalisation) runs: 'device' = batched in the
# model's data preprocessor on the training device (the workers send uint8 crops), 'workers' = per image in
# the loader workers, 'auto' = device on an accelerator, and on CPU what tools/benchmark_data.py measured
# faster there (also the device). Switch: --cfg-options train_dataloader.dataset.pipeline.2.where=workers
# Workers: read, decode (JPEGs at a reduced DCT scale when the crop allows), random-resized crop, flip, uint8.
train_pipeline = [
    dict(type='torchvision/RandomResizedCrop', size=224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
    dict(type='torchvision/RandomHorizontalFlip', p=0.5),
    # ColorJitter(0.4, 0.4, 0.4) + PCALighting(0.1) + Normalize, the same random draws per image
    dict(type='Photometric', brightness=0.4, contrast=0.4, saturation=0.4, lighting=0.1, mean=mean, std=std,
         where='auto'),
]
val_pipeline = [
    dict(type='torchvision/Resize', size=256, antialias=True),  # shorter side
    dict(type='torchvision/CenterCrop', size=224),
    dict(type='torchvision/ToDtype', dtype='float32', scale=False),
    dict(type='torchvision/Normalize', mean=mean, std=std),
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
