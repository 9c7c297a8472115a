# Fashion-MNIST scale of the "B-standard" row of Tables 7/8: ResNet-B with the paper's baseline recipe
# (Nesterov SGD, Xavier init, step decay, fp32). Only sizes, schedule lengths and data roots change:
# 28x28 product photos upscaled to 32 px, a ResNet-18 layout at quarter width, 2 epochs (x0.1 after the first).
_base_ = './resnet50b_baseline.py'

data_root = 'data/fashion/imagenet'
size = 32
epochs = 2
classes = ('tshirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot')
mean = [123.68, 116.779, 103.939]
std = [58.393, 57.12, 57.375]
train_pipeline = [
    # area 25-100 %: an 8 % crop of a 28 px image would leave 8 px of the item
    dict(type='RandomResizedCrop', size=size, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
    dict(type='RandomHorizontalFlip', p=0.5),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(type='ToDtype', dtype='float32', scale=False),
    dict(type='PCALighting', alphastd=0.1, value_range=255),
    dict(type='Normalize', mean=mean, std=std),
]
val_pipeline = [
    dict(type='Resize', size=size, antialias=True),
    dict(type='ToDtype', dtype='float32', scale=False),
    dict(type='Normalize', mean=mean, std=std),
]
train_dataloader = dict(batch_size=64, num_workers=2, persistent_workers=True, pin_memory=False,
                        dataset=dict(data_root=data_root, classes=classes, pipeline=train_pipeline))
val_dataloader = dict(batch_size=256, num_workers=2, persistent_workers=True, pin_memory=False,
                      dataset=dict(data_root=data_root, classes=classes, pipeline=val_pipeline))
test_dataloader = val_dataloader
model = dict(num_classes=10,
             backbone=dict(depth=18, stem_channels=32, base_channels=16))
train_cfg = dict(max_epochs=epochs)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
