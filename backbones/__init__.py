"""ResNet-A/B/C/D backbones (He et al., CVPR 2019, Figure 2) in one registry shared by all tasks."""
from .registry import MODELS
from .resnet import ARCH, RESNET_VARIANTS, BagResNet
from .inception import BagInceptionV3  # noqa: F401  (the paper's other two networks)
from .mobilenet import BagMobileNetV1  # noqa: F401

__all__ = ['MODELS', 'BagResNet', 'ARCH', 'RESNET_VARIANTS']
