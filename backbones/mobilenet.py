"""MobileNet v1 (Howard et al., 2017), the paper's third network (Tables 2, 4, 6; "MobileNet (1.0)", 224 px).

torchvision has no MobileNet v1, so it is written here once: a 3x3 stride-2 stem, then 13 depthwise-
separable blocks (3x3 depthwise conv -> BN -> act -> 1x1 conv -> BN -> act), with a width multiplier.
Module names are timm's ``mobilenetv1_100`` (``conv_stem``, ``bn1``, ``blocks.<stage>.<i>.{conv_dw, bn1,
conv_pw, bn2}``), so its tensors load as they are, and widths are rounded as timm rounds them (to a
multiple of 8, never more than 10 % down).

Activation: GluonCV's ``mobilenet1.0`` (the paper's code) uses ReLU, the default here; timm's
``mobilenetv1_100`` (and TensorFlow's original) uses ReLU6: pass ``act='relu6'`` with timm's weights.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from mmcv.cnn import build_norm_layer
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .base import StagedBackbone
from .registry import MODELS

# (output channels at width 1.0, blocks, stride of the first block) of timm's five block groups;
# group 0 (stride 1) belongs to the stem, groups 1-4 are the four stages (output stride 4, 8, 16, 32)
ARCH = ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2))
ACTS = {'relu': nn.ReLU, 'relu6': nn.ReLU6}


def round_channels(channels: float, divisor: int = 8) -> int:
    """Nearest multiple of ``divisor`` (at least ``divisor``), never more than 10 % below ``channels``."""
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


class DepthwiseSeparable(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm_cfg: dict, act: type):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, cin)[1]
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, cout)[1]
        self.act = act(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.conv_dw(x)))
        return self.act(self.bn2(self.conv_pw(x)))


@MODELS.register_module()
class BagMobileNetV1(StagedBackbone):
    """MobileNet v1 returning the feature maps of ``out_indices`` as a tuple.

    Stem: ``conv_stem``, ``bn1``, ``blocks.0`` (stride 2). Stages (channels at width 1.0, output stride):
    0: ``blocks.1`` (128, 4); 1: ``blocks.2`` (256, 8); 2: ``blocks.3`` (512, 16); 3: ``blocks.4`` (1024, 32).

    Args:
        width: the width multiplier alpha (1.0 is the paper's "MobileNet (1.0)").
        act: 'relu' (GluonCV, the paper) or 'relu6' (timm / TensorFlow weights).
        out_indices, frozen_stages, norm_cfg, norm_eval, init_cfg: as BagResNet (``frozen_stages=0``
            freezes the stem).
        zero_gamma: must stay False: there is no residual block (n/a for this backbone).
        init: 'xavier' (the paper, Section 2.1) or 'timm' (TensorFlow's normal(0, sqrt(2 / fan_out))).
        channels_last: channels-last (NHWC) convolutions, a speed switch as BagResNet's (outputs stay NCHW).
    """

    inits = ('xavier', 'timm')
    head_prefixes = ('classifier.', 'conv_head.', 'fc.', 'head.')

    def __init__(self,
                 width: float = 1.0,
                 act: str = 'relu',
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: dict | None = None,
                 norm_eval: bool = False,
                 zero_gamma: bool = False,
                 init: str = 'timm',
                 init_cfg: dict | list | None = None,
                 channels_last: bool = False):
        super().__init__(out_indices, frozen_stages, norm_eval, zero_gamma, init, init_cfg, channels_last)
        if not width > 0:
            raise ValueError(f'width must be > 0, got {width!r}')
        if act not in ACTS:
            raise ValueError(f'act must be one of {tuple(ACTS)}, got {act!r}')
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else dict(norm_cfg)
        self.width, self.act_name = width, act
        act_layer = ACTS[act]
        cin = round_channels(32 * width)
        self.conv_stem = nn.Conv2d(3, cin, 3, stride=2, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, cin)[1]
        self.act = act_layer(inplace=True)
        groups, widths = [], []
        for channels, blocks, stride in ARCH:
            cout = round_channels(channels * width)
            groups.append(nn.Sequential(*[DepthwiseSeparable(cin if i == 0 else cout, cout, stride if i == 0 else 1,
                                                             norm_cfg, act_layer) for i in range(blocks)]))
            widths.append(cout)
            cin = cout
        self.blocks = nn.Sequential(*groups)
        self.stem_names = ('conv_stem', 'bn1', 'act', 'blocks.0')
        self.stage_names = (('blocks.1',), ('blocks.2',), ('blocks.3',), ('blocks.4',))
        self.feat_channels = tuple(widths[1:])
        self._finish()

    def _reference_init(self) -> None:
        # timm's _init_weight_goog (TensorFlow's): normal(0, sqrt(2 / fan_out)), fan_out per group; BN 1 / 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, _BatchNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
