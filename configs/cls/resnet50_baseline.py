# Table 4/5 "baseline": ResNet-50, batch 256 (8 x 32), FP32, step decay, Xavier init.
_base_ = ['./_base_/default_runtime.py', './_base_/imagenet.py', './_base_/resnet50.py',
          './_base_/schedule_step.py']
