"""The ResNet family of the paper (Figure 2): one class, the variant is a constructor argument.

    A  original: stride 2 on the first 1x1 of path A, 7x7 stem
    B  stride 2 on the 3x3 of path A (torchvision's "v1.5")
    C  B + deep stem: three 3x3 convs, 32-32-64 channels
    D  C + 2x2 average pool (stride 2) before a stride-1 1x1 conv in path B

State-dict keys follow torchvision (A, B) and timm (C, D: ``conv1.{0,1,3,4,6}`` stem,
``downsample.{1,2}`` after the pool), so their weights load as they are.
The keyword arguments mirror mmdet/mmseg's ResNet so their configs only swap ``type``.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .registry import MODELS

VARIANTS = ('A', 'B', 'C', 'D')


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, dilation, downsample, norm_cfg, stride_on_3x3=True):
        super().__init__()
        # mmdet/mmseg convention: only the first 3x3 is dilated (so dilated weights match theirs).
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = _norm(norm_cfg, planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = _norm(norm_cfg, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.Module:
        return self.bn2

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, dilation, downsample, norm_cfg, stride_on_3x3=True):
        super().__init__()
        s1, s3 = (1, stride) if stride_on_3x3 else (stride, 1)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=s1, bias=False)
        self.bn1 = _norm(norm_cfg, planes)
        self.conv2 = _conv3x3(planes, planes, s3, dilation)
        self.bn2 = _norm(norm_cfg, planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _norm(norm_cfg, planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.Module:
        return self.bn3

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


ARCH = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


@MODELS.register_module()
class BagResNet(BaseModule):
    """ResNet-A/B/C/D, depth 18-152, returning the feature maps of ``out_indices`` as a tuple.

    Args:
        depth: 18, 34, 50, 101 or 152.
        variant: 'A', 'B', 'C' or 'D' (Figure 2 of the paper).
        in_channels: input channels.
        stem_channels: stem output width (the deep stem of C/D uses half of it twice first).
        base_channels: width of the first stage.
        num_stages: 1-4.
        strides, dilations: per stage. A dilated stage keeps its resolution (FCN-D8 uses
            strides (1, 2, 1, 1) and dilations (1, 1, 2, 4)).
        contract_dilation: the first block of a dilated stage uses half the dilation (mmseg's FCN).
        out_indices: stages whose outputs are returned.
        frozen_stages: stages (and the stem, for >= 0) set to eval mode with no gradients; -1: none.
        norm_cfg: normalisation layer, e.g. ``dict(type='BN')`` or ``dict(type='SyncBN')``.
        norm_eval: keep every BN in eval mode while training (detection fine-tuning).
        zero_gamma: start the last BN of every residual branch at gamma = 0 (Section 3.1).
        init: 'xavier' (the paper's baseline, Section 2.1) or 'torchvision' (Kaiming normal).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=FILE)`` loads weights
            through the project's strict converter (any supported layout, loud on mismatch).
    """

    def __init__(self,
                 depth: int = 50,
                 variant: str = 'D',
                 in_channels: int = 3,
                 stem_channels: int = 64,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 contract_dilation: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: dict | None = None,
                 norm_eval: bool = False,
                 zero_gamma: bool = False,
                 init: str = 'torchvision',
                 init_cfg: dict | list | None = None,
                 style: str | None = None):
        super().__init__(init_cfg=init_cfg)
        if depth not in ARCH:
            raise ValueError(f'depth must be one of {sorted(ARCH)}, got {depth!r}')
        variant = str(variant).upper()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        # mmdet/mmseg configs pass style: 'caffe' is stride on the 1x1 (A), 'pytorch' on the 3x3 (B/C/D)
        if style is not None and (style not in ('caffe', 'pytorch') or (style == 'caffe') != (variant == 'A')):
            raise ValueError(f"style={style!r} contradicts variant={variant!r} (caffe means A, pytorch means B, C or D)")
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be in 1..4, got {num_stages}')
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ValueError(f'strides {tuple(strides)} and dilations {tuple(dilations)} need one entry per stage '
                             f'({num_stages})')
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ValueError(f'out_indices {tuple(out_indices)} must name stages in 0..{num_stages - 1}')
        if init not in ('xavier', 'torchvision'):
            raise ValueError(f"init must be 'xavier' or 'torchvision', got {init!r}")
        self.depth, self.variant = depth, variant
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_gamma = zero_gamma
        self.init = init
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        block, layers = ARCH[depth]
        self.block = block

        if variant in ('C', 'D'):
            half = stem_channels // 2
            self.conv1 = nn.Sequential(
                _conv3x3(in_channels, half, stride=2), _norm(norm_cfg, half), nn.ReLU(inplace=True),
                _conv3x3(half, half), _norm(norm_cfg, half), nn.ReLU(inplace=True),
                _conv3x3(half, stem_channels))
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = _norm(norm_cfg, stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        inplanes = stem_channels
        self.stage_names = []
        for i in range(num_stages):
            planes = base_channels * 2 ** i
            layer = self._make_stage(block, inplanes, planes, layers[i], strides[i], dilations[i],
                                     contract_dilation, norm_cfg)
            inplanes = planes * block.expansion
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.stage_names.append(name)
        self.feat_channels = tuple(base_channels * 2 ** i * block.expansion for i in range(num_stages))
        self.out_channels = self.feat_channels[-1]
        self._reset_parameters()
        self._freeze_stages()

    def _make_stage(self, block, inplanes, planes, blocks, stride, dilation, contract_dilation, norm_cfg):
        downsample = None
        outplanes = planes * block.expansion
        if stride != 1 or inplanes != outplanes:
            if self.variant == 'D':
                pool = (nn.AvgPool2d(stride, stride=stride, ceil_mode=True, count_include_pad=False)
                        if stride != 1 else nn.Identity())
                downsample = nn.Sequential(pool, nn.Conv2d(inplanes, outplanes, 1, bias=False),
                                           _norm(norm_cfg, outplanes))
            else:
                downsample = nn.Sequential(nn.Conv2d(inplanes, outplanes, 1, stride=stride, bias=False),
                                           _norm(norm_cfg, outplanes))
        first_dilation = dilation // 2 if (contract_dilation and dilation > 1) else dilation
        stride_on_3x3 = self.variant != 'A'
        mods = [block(inplanes, planes, stride, first_dilation, downsample, norm_cfg, stride_on_3x3)]
        for _ in range(1, blocks):
            mods.append(block(outplanes, planes, 1, dilation, None, norm_cfg, stride_on_3x3))
        return nn.Sequential(*mods)

    def residual_blocks(self):
        for name in self.stage_names:
            yield from getattr(self, name)

    def _reset_parameters(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if self.init == 'xavier':
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (_BatchNorm, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.zero_gamma:
            for blk in self.residual_blocks():
                nn.init.zeros_(blk.last_bn().weight)

    def init_weights(self):
        """Random init happens in the constructor; a ``Pretrained`` init_cfg loads strictly."""
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            from .checkpoint import load_backbone_weights
            load_backbone_weights(self, cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True
        elif cfg:
            super().init_weights()

    def _freeze_stages(self):
        if self.frozen_stages >= 0:
            for m in (self.conv1, self.bn1):
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False
        for i in range(min(self.frozen_stages, len(self.stage_names))):
            m = getattr(self, self.stage_names[i])
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
