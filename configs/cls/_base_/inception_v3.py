# Inception-V3 at 299 px (the paper's Tables 2, 4, 6), as variables that a row config applies on top of the
# ResNet row with the same recipe (a base config cannot override another base's keys, so the row does it):
#   _base_ = ['./resnet50_efficient.py', './_base_/inception_v3.py']
#   model = dict(backbone={{_base_.inception_v3}}, dropout={{_base_.inception_dropout}})
#   train_dataloader = dict(dataset=dict(pipeline={{_base_.inception_train_pipeline}}))
#   val_dataloader = dict(dataset=dict(pipeline={{_base_.inception_val_pipeline}}))
# No auxiliary head (GluonCV's Inception3, the paper's 23.8M parameters; backbones/inception.py says why).
inception_v3 = dict(_delete_=True, type='BagInceptionV3', out_indices=(3,), init='xavier',
                    channels_last=True)  # measured faster on CPU (fp32 1.5x, bf16 2.3x), as ResNet's
inception_dropout = 0.5  # before the FC, as GluonCV's and torchvision's Inception-V3
# the paper's augmentation (_base_/imagenet.py) with a 299 px crop; val as GluonCV: resize 342, centre crop 299
inception_train_pipeline = [
    dict(type='torchvision/RandomResizedCrop', size=299, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
    dict(type='torchvision/RandomHorizontalFlip', p=0.5),
    dict(type='Photometric', brightness=0.4, contrast=0.4, saturation=0.4, lighting=0.1,
         mean=[123.68, 116.779, 103.939], std=[58.393, 57.12, 57.375], where='auto'),
]
inception_val_pipeline = [
    dict(type='torchvision/Resize', size=342, antialias=True),  # shorter side
    dict(type='torchvision/CenterCrop', size=299),
    dict(type='torchvision/ToDtype', dtype='float32', scale=False),
    dict(type='torchvision/Normalize', mean=[123.68, 116.779, 103.939], std=[58.393, 57.12, 57.375]),
]
