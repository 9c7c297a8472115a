"""Inception-V3 (Szegedy et al., CVPR 2016), the paper's second network (Tables 2, 4, 6; 299x299 input).

The architecture is torchvision's: its InceptionA-E blocks, composed here with a conv block that takes
``norm_cfg`` (BN with eps 1e-3 by default, as torchvision and GluonCV). Module names are torchvision's
(``Conv2d_1a_3x3``, ``Mixed_5b``, ...), so the tensors of ``torchvision.models.inception_v3`` load as they are.

Auxiliary head: not built. The paper trains Inception-V3 with GluonCV, whose Inception3 has no auxiliary
classifier, and its 23.8M parameters are the network without it (27.2M with); the auxiliary classifier is
a training-time extra loss (weight 0.3-0.4) of the original recipe, not a feature stage, and it has no
use for detection or segmentation. Loading a torchvision checkpoint drops its ``AuxLogits.*`` tensors
together with the classifier ``fc.*``; everything else must fit exactly.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from mmcv.cnn import build_norm_layer
from torch import nn
from torch.nn import functional as F
from torchvision.models.inception import InceptionA, InceptionB, InceptionC, InceptionD, InceptionE

from .base import StagedBackbone
from .registry import MODELS


class BasicConv2d(nn.Module):
    """conv (no bias) -> norm -> ReLU, with torchvision's key names ``conv`` and ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, norm_cfg: dict, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = build_norm_layer(norm_cfg, out_channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


@MODELS.register_module()
class BagInceptionV3(StagedBackbone):
    """Inception-V3 returning the feature maps of ``out_indices`` as a tuple.

    Stem: ``Conv2d_1a_3x3`` .. ``maxpool1`` (stride 4). Stages (channels, stride at 299 px input):
    0: ``Conv2d_3b_1x1``, ``Conv2d_4a_3x3`` (192, 4; 71x71); 1: ``maxpool2``, ``Mixed_5b-d`` (288, 8; 35x35);
    2: ``Mixed_6a-e`` (768, 16; 17x17); 3: ``Mixed_7a-c`` (2048, 32; 8x8). The smallest input it accepts
    is 75x75 (its unpadded convs and pools).

    Args:
        out_indices: stages whose outputs are returned (increasing).
        frozen_stages: -1 none; 0 the stem; k the stem and stages 0..k-1 (eval mode, no gradients).
        norm_cfg: normalisation layer config; ``eps`` defaults to 1e-3 (torchvision, GluonCV).
        norm_eval: keep every BN in eval mode while training.
        zero_gamma: must stay False: there is no residual block (n/a for this backbone).
        init: 'xavier' (the paper, Section 2.1) or 'torchvision' (truncated normal, std 0.1).
        transform_input: map inputs normalised with ImageNet mean/std to (x - 0.5) / 0.5, the input
            range torchvision's pretrained Inception-V3 weights were trained on (its ``transform_input``).
        init_cfg: ``dict(type='Pretrained', checkpoint=FILE)`` loads weights strictly (see ``load_weights``).
        channels_last: channels-last (NHWC) convolutions, a speed switch as BagResNet's (outputs stay NCHW).
    """

    inits = ('xavier', 'torchvision')
    head_prefixes = ('fc.', 'AuxLogits.', 'head.')

    def __init__(self,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: dict | None = None,
                 norm_eval: bool = False,
                 zero_gamma: bool = False,
                 init: str = 'torchvision',
                 transform_input: bool = False,
                 init_cfg: dict | list | None = None,
                 channels_last: bool = False):
        super().__init__(out_indices, frozen_stages, norm_eval, zero_gamma, init, init_cfg, channels_last)
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else dict(norm_cfg)
        norm_cfg.setdefault('eps', 1e-3)
        conv = partial(BasicConv2d, norm_cfg=norm_cfg)
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32, conv_block=conv)
        self.Mixed_5c = InceptionA(256, pool_features=64, conv_block=conv)
        self.Mixed_5d = InceptionA(288, pool_features=64, conv_block=conv)
        self.Mixed_6a = InceptionB(288, conv_block=conv)
        self.Mixed_6b = InceptionC(768, channels_7x7=128, conv_block=conv)
        self.Mixed_6c = InceptionC(768, channels_7x7=160, conv_block=conv)
        self.Mixed_6d = InceptionC(768, channels_7x7=160, conv_block=conv)
        self.Mixed_6e = InceptionC(768, channels_7x7=192, conv_block=conv)
        self.Mixed_7a = InceptionD(768, conv_block=conv)
        self.Mixed_7b = InceptionE(1280, conv_block=conv)
        self.Mixed_7c = InceptionE(2048, conv_block=conv)
        self.stem_names = ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'maxpool1')
        self.stage_names = (('Conv2d_3b_1x1', 'Conv2d_4a_3x3'),
                            ('maxpool2', 'Mixed_5b', 'Mixed_5c', 'Mixed_5d'),
                            ('Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e'),
                            ('Mixed_7a', 'Mixed_7b', 'Mixed_7c'))
        self.feat_channels = (192, 288, 768, 2048)
        self._finish()

    def _reference_init(self) -> None:
        # torchvision's Inception3(init_weights=True): truncated normal std 0.1 in [-2, 2], BN 1 / 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-2, b=2)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.transform_input:  # torchvision's Inception3._transform_input: (x * std + mean - 0.5) / 0.5
            x = torch.cat([x[:, c:c + 1] * (s / 0.5) + (m - 0.5) / 0.5
                           for c, (m, s) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))], 1)
        return super().forward(x)
