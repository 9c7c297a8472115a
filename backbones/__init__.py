"""ResNet-A/B/C/D backbones (He et al., CVPR 2019, Figure 2) in one registry shared by all tasks."""
from .registry import MODELS
from .resnet import ARCH, VARIANTS, BagResNet

__all__ = ['MODELS', 'BagResNet', 'ARCH', 'VARIANTS']
