"""The ResNet family of the paper (Figure 2): one class, the variant is a constructor argument.

    A  original: stride 2 on the first 1x1 of path A, 7x7 stem
    B  stride 2 on the 3x3 of path A (torchvision's "v1.5")
    C  B + deep stem: three 3x3 convs, 32-32-64 channels
    D  C + 2x2 average pool (stride 2) before a stride-1 1x1 conv in path B

State-dict keys follow torchvision (A, B) and timm (C, D: ``conv1.{0,1,3,4,6}`` stem,
``downsample.{1,2}`` after the pool), so their weights load as they are.
The keyword arguments are those of mmdet/mmseg/mmpretrain's ResNet, so their configs only swap ``type``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer, build_plugin_layer
from mmcv.cnn.bricks import DropPath
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .base import BackboneBase
from .registry import MODELS

RESNET_VARIANTS = ('A', 'B', 'C', 'D')  # Figure 2 of the paper: stem and downsampling
PLUGIN_POSITIONS = ('after_conv1', 'after_conv2', 'after_conv3')

# What an omitted argument means, per toolbox: each toolbox's own ResNet defaults (mmdet 3.3,
# mmseg 1.2, mmpretrain 1.x), and the project's own. 'stem_channels': None is mmdet's "= base_channels".
TOOLBOX_DEFAULTS = {
    'bagtricks': dict(variant='D', norm_eval=False, zero_gamma=False, stem_channels=64, out_indices=(0, 1, 2, 3)),
    'mmdet': dict(variant='B', norm_eval=True, zero_gamma=True, stem_channels=None, out_indices=(0, 1, 2, 3)),
    'mmseg': dict(variant='B', norm_eval=False, zero_gamma=True, stem_channels=64, out_indices=(0, 1, 2, 3)),
    'mmpretrain': dict(variant='B', norm_eval=False, zero_gamma=True, stem_channels=64, out_indices=(3,)),
}
TOOLBOX_DEFAULTS['mmcls'] = TOOLBOX_DEFAULTS['mmpretrain']


def _norm(norm_cfg: dict, channels: int) -> nn.Module:
    return build_norm_layer(norm_cfg, channels)[1]


def _conv(conv_cfg: dict | None, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1) -> nn.Module:
    # build_conv_layer(None, ...) is a plain nn.Conv2d; conv_cfg / dcn select mmcv's other conv layers
    return build_conv_layer(conv_cfg, cin, cout, k, stride=stride, padding=dilation * (k // 2), dilation=dilation,
                            bias=False)


class _Block(nn.Module):
    """What both blocks share: the checkpointed residual branch and the final ReLU."""

    with_cp = False

    def forward(self, x):
        # torch.utils.checkpoint recomputes the block in backward instead of keeping its activations
        # (mmdet's with_cp); as there, BN running statistics of a block in train mode are updated twice.
        if self.with_cp and self.training and torch.is_grad_enabled():
            out = cp.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


class BasicBlock(_Block):
    expansion = 1

    def __init__(self, inplanes, planes, stride, dilation, downsample, norm_cfg, conv_cfg=None, with_cp=False,
                 drop_path=0.0):
        super().__init__()
        # mmdet/mmseg convention: only the first 3x3 is dilated (so dilated weights match theirs).
        self.conv1 = _conv(conv_cfg, inplanes, planes, 3, stride, dilation)
        self.bn1 = _norm(norm_cfg, planes)
        self.conv2 = _conv(conv_cfg, planes, planes, 3)
        self.bn2 = _norm(norm_cfg, planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.with_cp = with_cp
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.plugin_names = ()

    def last_bn(self) -> nn.Module:
        return self.bn2

    def _residual(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.drop_path(out) + identity


class Bottleneck(_Block):
    expansion = 4

    def __init__(self, inplanes, planes, stride, dilation, downsample, norm_cfg, stride_on_3x3=True,
                 conv_cfg=None, with_cp=False, drop_path=0.0, dcn=None, plugins=()):
        super().__init__()
        s1, s3 = (1, stride) if stride_on_3x3 else (stride, 1)
        self.conv1 = _conv(conv_cfg, inplanes, planes, 1, s1)
        self.bn1 = _norm(norm_cfg, planes)
        dcn = dict(dcn) if dcn else None
        if dcn is not None and dcn.pop('fallback_on_stride', False):
            dcn = None  # mmdet's meaning of the flag: a plain conv in this block
        self.conv2 = _conv(dcn if dcn is not None else conv_cfg, planes, planes, 3, s3, dilation)
        self.with_dcn = dcn is not None
        self.bn2 = _norm(norm_cfg, planes)
        self.conv3 = _conv(conv_cfg, planes, planes * 4, 1)
        self.bn3 = _norm(norm_cfg, planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.with_cp = with_cp
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()  # no parameters: same keys
        # mmdet's plugins: built by mmcv's build_plugin_layer, named by its abbreviation + postfix
        width = {'after_conv1': planes, 'after_conv2': planes, 'after_conv3': planes * 4}
        self.plugins_at = {pos: [] for pos in PLUGIN_POSITIONS}
        for plugin in plugins:
            cfg = dict(plugin['cfg'])
            postfix = cfg.pop('postfix', '')
            try:
                name, layer = build_plugin_layer(cfg, postfix=postfix, in_channels=width[plugin['position']])
            except KeyError as e:
                raise ValueError(f"plugin type {plugin['cfg'].get('type')!r} is not registered in mmcv's (or the "
                                 f"current scope's) MODELS: {e}") from None
            if hasattr(self, name):
                raise ValueError(f"two plugins in one block are named {name!r}: give them different 'postfix' values")
            self.add_module(name, layer)
            self.plugins_at[plugin['position']].append(name)
        self.plugin_names = tuple(n for pos in PLUGIN_POSITIONS for n in self.plugins_at[pos])

    def last_bn(self) -> nn.Module:
        return self.bn3

    def _plugins(self, out, position):
        for name in self.plugins_at[position]:  # chained, as mmdet 3.x
            out = getattr(self, name)(out)
        return out

    def _residual(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        if self.plugin_names:
            out = self._plugins(out, 'after_conv1')
        out = self.relu(self.bn2(self.conv2(out)))
        if self.plugin_names:
            out = self._plugins(out, 'after_conv2')
        out = self.bn3(self.conv3(out))
        if self.plugin_names:
            out = self._plugins(out, 'after_conv3')
        return self.drop_path(out) + identity


ARCH = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def resolve_variant(variant, deep_stem, avg_down, style, default: str) -> str:
    """The variant from ``variant`` and/or mmdet's spellings of it; a contradiction is an error.

    mmdet/mmseg: ``style='caffe'`` is A, ``'pytorch'`` B; ``deep_stem=True`` C; ``+ avg_down=True`` D.
    """
    if style is not None and style not in ('pytorch', 'caffe'):
        raise ValueError(f"style must be 'pytorch' or 'caffe', got {style!r}")
    if variant is None:
        if deep_stem is None and avg_down is None and style is None:
            return default
        deep, avg, caffe = bool(deep_stem), bool(avg_down), style == 'caffe'
        if avg and not deep:
            raise ValueError('avg_down=True without deep_stem=True is none of the variants A-D '
                             '(D = deep_stem=True + avg_down=True); expected deep_stem=True or variant=...')
        if caffe and deep:
            raise ValueError("style='caffe' with deep_stem=True is none of the variants A-D "
                             "(caffe style is A, whose stem is the 7x7 conv)")
        return 'D' if avg else 'C' if deep else 'A' if caffe else 'B'
    variant = str(variant).upper()
    if variant not in RESNET_VARIANTS:
        raise ValueError(f'variant must be one of {RESNET_VARIANTS}, got {variant!r}')
    for name, given, implied, meaning in (
            ('deep_stem', deep_stem, variant in 'CD', 'C and D have the deep stem'),
            ('avg_down', avg_down, variant == 'D', 'only D average-pools in the downsample path')):
        if given is not None and bool(given) != implied:
            raise ValueError(f'{name}={given!r} contradicts variant={variant!r} ({meaning})')
    if style is not None and (style == 'caffe') != (variant == 'A'):
        raise ValueError(f"style={style!r} contradicts variant={variant!r} (caffe means A, pytorch means B, C or D)")
    return variant


@MODELS.register_module()
class BagResNet(BackboneBase):
    """ResNet-A/B/C/D, depth 18-152, returning the feature maps of ``out_indices`` as a tuple.

    Takes the keyword arguments of mmdet's, mmseg's and mmpretrain's ``ResNet`` with the same meaning and
    the same state-dict keys for DCN offsets and plugins, so a stock config swaps ``type`` and states whose
    defaults fill what it omits: ``dict(type='bagtricks.BagResNet', defaults='mmdet')`` (plus ``variant``
    where the config used ``ResNetV1c``/``ResNetV1d``).

    Defaults. An argument a config omits takes the default of the toolbox named by ``defaults``
    ('bagtricks' when not given, wherever the backbone is built: what a config builds is visible in
    the config). They differ in:

    ========================  ===========  ===========  ===========  ==========
    argument                  bagtricks    mmdet        mmseg        mmpretrain
    ========================  ===========  ===========  ===========  ==========
    variant                   'D'          'B'          'B'          'B'
    norm_eval                 False        True         False        False
    zero_gamma                False        True         True         True
    stem_channels             64           base_ch.     64           64
    out_indices               (0,1,2,3)    (0,1,2,3)    (0,1,2,3)    (3,)
    ========================  ===========  ===========  ===========  ==========

    Args:
        depth: 18, 34, 50, 101 or 152.
        variant: 'A', 'B', 'C' or 'D' (Figure 2 of the paper). mmdet's spellings also select it:
            ``style`` ('caffe' = A, 'pytorch' = B/C/D), ``deep_stem`` (C, D), ``avg_down`` (D);
            given together with ``variant`` they must agree with it.
        in_channels: input channels.
        stem_channels: stem output width (the deep stem of C/D uses half of it twice first).
        base_channels: width of the first stage.
        num_stages: 1-4.
        strides, dilations: per stage. A dilated stage keeps its resolution (FCN-D8 uses
            strides (1, 2, 1, 1) and dilations (1, 1, 2, 4)).
        contract_dilation: the first block of a dilated stage uses half the dilation (mmseg's FCN).
        multi_grid: mmseg's per-block dilations of the last stage (one per block, e.g. (1, 2, 4));
            they replace that stage's dilation and contraction.
        out_indices: stages whose outputs are returned.
        frozen_stages: stages (and the stem, for >= 0) set to eval mode with no gradients; -1: none.
        conv_cfg: mmcv conv layer for every conv (None: nn.Conv2d), e.g. ``dict(type='ConvWS')``.
        norm_cfg: normalisation layer, e.g. ``dict(type='BN')`` or ``dict(type='SyncBN')``.
        norm_eval: keep every BN in eval mode while training (detection fine-tuning).
        zero_gamma: start the last BN of every residual branch at gamma = 0 (Section 3.1);
            ``zero_init_residual`` is mmdet's name for it (give one, or both equal). A ``Pretrained``
            load overwrites it, as in mmdet.
        dcn: mmcv deformable conv for the 3x3 of the bottleneck, ``dict(type='DCN' | 'DCNv2',
            deform_groups=1, fallback_on_stride=False)``; ``stage_with_dcn`` says in which stages.
            Depth >= 50 (mmdet has none for basic blocks either). Offsets start at zero.
        plugins: mmdet's plugin list, ``dict(cfg=dict(type='ContextBlock', ...), position=
            'after_conv1' | 'after_conv2' | 'after_conv3', stages=(False, True, True, True))``, built by
            mmcv's ``build_plugin_layer`` into bottleneck blocks and chained at each position (as
            mmdet; mmseg 1.2 feeds each plugin the same input and keeps the last, which differs only
            when one position holds several plugins). Plugins keep their own initialisation.
        with_cp: gradient checkpointing of each block while training (torch.utils.checkpoint).
        drop_path_rate: mmpretrain's stochastic depth: the residual branch of each sample is dropped
            with a probability rising linearly over the blocks from 0 to this value (mmcv's DropPath).
        init: 'xavier' (the paper's baseline, Section 2.1) or 'torchvision' (Kaiming normal, which is
            also mmdet's Kaiming init).
        init_cfg: mmengine init config, a dict or a list. ``dict(type='Pretrained', checkpoint=...,
            prefix=None)`` always loads through the project's strict converter (any supported layout,
            loud on mismatch; DCN offsets and plugins may be absent from the file and keep their
            init); ``checkpoint`` is a path, ``torchvision://``, ``open-mmlab://``, ``mmcls://`` or
            ``http(s)://`` (mmengine's names, resolved in its cache: :mod:`backbones.pretrained`).
            Other entries of a list run through mmengine's initialisers first.
        pretrained: mmdet/mmseg's older spelling of ``init_cfg=dict(type='Pretrained', checkpoint=...)``
            (mmseg's EncoderDecoder copies its ``pretrained`` here).
        channels_last: run the convolutions in channels-last (NHWC) memory format: the weights are
            stored so and the input is converted on entry. The returned feature maps are plain
            contiguous NCHW, because some consumers index memory as NCHW (mmcv's CPU RoIAlign gives
            wrong values on a channels-last input). Same numbers up to float rounding.
        defaults: whose defaults fill omitted arguments: 'bagtricks' (the default), 'mmdet', 'mmseg',
            'mmpretrain' (table above).
    """

    def __init__(self,
                 depth: int = 50,
                 variant: str | None = None,
                 in_channels: int = 3,
                 stem_channels: int | None = None,
                 base_channels: int = 64,
                 num_stages: int = 4,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 dilations: Sequence[int] = (1, 1, 1, 1),
                 contract_dilation: bool = False,
                 multi_grid: Sequence[int] | None = None,
                 out_indices: Sequence[int] | None = None,
                 frozen_stages: int = -1,
                 conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None,
                 norm_eval: bool | None = None,
                 zero_gamma: bool | None = None,
                 zero_init_residual: bool | None = None,
                 dcn: dict | None = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 plugins: list | None = None,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.0,
                 init: str = 'torchvision',
                 init_cfg: dict | list | None = None,
                 pretrained: str | None = None,
                 style: str | None = None,
                 deep_stem: bool | None = None,
                 avg_down: bool | None = None,
                 channels_last: bool = False,
                 defaults: str = 'bagtricks'):
        if defaults not in TOOLBOX_DEFAULTS:
            raise ValueError(f'defaults must be one of {sorted(TOOLBOX_DEFAULTS)}, got {defaults!r}')
        dflt = TOOLBOX_DEFAULTS[defaults]
        if pretrained is not None:
            if not isinstance(pretrained, str):
                raise TypeError(f'pretrained must be a str (a path or URL) or None, got {type(pretrained).__name__}')
            if init_cfg:
                raise ValueError(f'pretrained={pretrained!r} and init_cfg={init_cfg!r} both given; '
                                 'expected one of them (pretrained is short for a Pretrained init_cfg)')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        if depth not in ARCH:
            raise ValueError(f'depth must be one of {sorted(ARCH)}, got {depth!r}')
        variant = resolve_variant(variant, deep_stem, avg_down, style, dflt['variant'])
        if zero_gamma is not None and zero_init_residual is not None and bool(zero_gamma) != bool(zero_init_residual):
            raise ValueError(f'zero_gamma={zero_gamma!r} and zero_init_residual={zero_init_residual!r} disagree; '
                             'they are one switch (give one of them)')
        zero_gamma = bool(dflt['zero_gamma'] if zero_gamma is None and zero_init_residual is None
                          else zero_gamma if zero_gamma is not None else zero_init_residual)
        norm_eval = dflt['norm_eval'] if norm_eval is None else bool(norm_eval)
        if stem_channels is None:
            stem_channels = dflt['stem_channels'] or base_channels
        out_indices = tuple(dflt['out_indices'] if out_indices is None else out_indices)
        if not 1 <= num_stages <= 4:
            raise ValueError(f'num_stages must be in 1..4, got {num_stages}')
        if len(strides) != num_stages or len(dilations) != num_stages:
            raise ValueError(f'strides {tuple(strides)} and dilations {tuple(dilations)} need one entry per stage '
                             f'({num_stages})')
        if not out_indices or max(out_indices) >= num_stages or min(out_indices) < 0:
            raise ValueError(f'out_indices {tuple(out_indices)} must name stages in 0..{num_stages - 1}')
        if init not in ('xavier', 'torchvision'):
            raise ValueError(f"init must be 'xavier' or 'torchvision', got {init!r}")
        block, layers = ARCH[depth]
        stage_plugins = self._stage_plugins(plugins, num_stages, block, depth)
        if dcn is not None:
            if not isinstance(dcn, dict) or 'type' not in dcn:
                raise ValueError(f"dcn must be an mmcv conv config such as dict(type='DCN', deform_groups=1), "
                                 f"got {dcn!r}")
            if block is not Bottleneck:
                raise ValueError(f'dcn needs bottleneck blocks (depth 50, 101, 152); depth {depth} has basic blocks')
            if len(stage_with_dcn) != num_stages:
                raise ValueError(f'stage_with_dcn {tuple(stage_with_dcn)} needs one entry per stage ({num_stages})')
            if conv_cfg is not None:
                raise ValueError(f'conv_cfg={conv_cfg!r} with dcn: the deformable 3x3 replaces the conv layer; '
                                 'expected conv_cfg=None')
            import mmcv.ops  # noqa: F401  registers 'DCN' / 'DCNv2' in mmcv's MODELS
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'drop_path_rate must be in [0, 1), got {drop_path_rate!r}')
        if multi_grid is not None and len(multi_grid) != layers[num_stages - 1]:
            raise ValueError(f'multi_grid {tuple(multi_grid)} needs one dilation per block of the last stage '
                             f'({layers[num_stages - 1]} blocks)')
        self.depth, self.variant = depth, variant
        self.defaults = defaults
        self.style = 'caffe' if variant == 'A' else 'pytorch'
        self.deep_stem, self.avg_down = variant in 'CD', variant == 'D'
        self.stem_channels, self.base_channels = stem_channels, base_channels
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_gamma = self.zero_init_residual = zero_gamma
        self.with_cp = bool(with_cp)
        self.dcn, self.stage_with_dcn = dcn, tuple(stage_with_dcn)
        self.plugins = plugins
        self.multi_grid = tuple(multi_grid) if multi_grid is not None else None
        self.init = init
        norm_cfg = norm_cfg or dict(type='BN', requires_grad=True)
        self.block = block

        if variant in ('C', 'D'):
            half = stem_channels // 2
            self.conv1 = nn.Sequential(
                _conv(conv_cfg, in_channels, half, 3, stride=2), _norm(norm_cfg, half), nn.ReLU(inplace=True),
                _conv(conv_cfg, half, half, 3), _norm(norm_cfg, half), nn.ReLU(inplace=True),
                _conv(conv_cfg, half, stem_channels, 3))
        else:
            self.conv1 = build_conv_layer(conv_cfg, in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = _norm(norm_cfg, stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        inplanes = stem_channels
        self.stage_names = []
        # mmpretrain's stochastic depth rule: linear in the block index over the whole network
        rates = torch.linspace(0, drop_path_rate, sum(layers[:num_stages])).tolist()
        self.drop_path_rate = drop_path_rate
        for i in range(num_stages):
            planes = base_channels * 2 ** i
            extra = dict(conv_cfg=conv_cfg, with_cp=self.with_cp, drop_path=rates[:layers[i]])
            rates = rates[layers[i]:]
            if block is Bottleneck:
                extra.update(dcn=dcn if dcn is not None and stage_with_dcn[i] else None, plugins=stage_plugins[i])
            grid = self.multi_grid if i == num_stages - 1 else None
            layer = self._make_stage(block, inplanes, planes, layers[i], strides[i], dilations[i],
                                     contract_dilation, norm_cfg, grid, extra)
            inplanes = planes * block.expansion
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.stage_names.append(name)
        self.feat_channels = tuple(base_channels * 2 ** i * block.expansion for i in range(num_stages))
        self.out_channels = self.feat_channels[-1]
        self._reset_parameters()
        self._freeze_stages()
        self._use_channels_last(channels_last)

    @staticmethod
    def _stage_plugins(plugins, num_stages, block, depth) -> list[list[dict]]:
        """mmdet's plugin list, checked, split per stage (an entry without ``stages`` is in every stage)."""
        per_stage = [[] for _ in range(num_stages)]
        if not plugins:
            return per_stage
        if block is not Bottleneck:
            raise ValueError(f'plugins need bottleneck blocks (depth 50, 101, 152); depth {depth} has basic blocks')
        for p in plugins:
            if not isinstance(p, dict) or not isinstance(p.get('cfg'), dict) or 'type' not in p['cfg']:
                raise ValueError(f"each plugin is dict(cfg=dict(type=...), position=..., stages=...), got {p!r}")
            if p.get('position') not in PLUGIN_POSITIONS:
                raise ValueError(f"plugin position must be one of {PLUGIN_POSITIONS}, got {p.get('position')!r}")
            stages = p.get('stages')
            if stages is not None and len(stages) != num_stages:
                raise ValueError(f'plugin stages {tuple(stages)} need one entry per stage ({num_stages})')
            for i in range(num_stages):
                if stages is None or stages[i]:
                    per_stage[i].append(p)
        return per_stage

    def _make_stage(self, block, inplanes, planes, blocks, stride, dilation, contract_dilation, norm_cfg,
                    multi_grid, extra):
        downsample = None
        outplanes = planes * block.expansion
        conv_cfg = extra['conv_cfg']
        if stride != 1 or inplanes != outplanes:
            if self.variant == 'D':
                pool = (nn.AvgPool2d(stride, stride=stride, ceil_mode=True, count_include_pad=False)
                        if stride != 1 else nn.Identity())
                downsample = nn.Sequential(pool, _conv(conv_cfg, inplanes, outplanes, 1), _norm(norm_cfg, outplanes))
            else:
                downsample = nn.Sequential(_conv(conv_cfg, inplanes, outplanes, 1, stride=stride),
                                           _norm(norm_cfg, outplanes))
        if multi_grid is not None:
            dilation_of = list(multi_grid)  # mmseg: the grid replaces the stage's dilation
        else:
            first = dilation // 2 if (contract_dilation and dilation > 1) else dilation
            dilation_of = [first] + [dilation] * (blocks - 1)
        extra = dict(extra)
        if block is Bottleneck:  # ResNet-B/C/D stride in the 3x3 (Section 4.1); a basic block has only 3x3s
            extra['stride_on_3x3'] = self.variant != 'A'
        drop = extra.pop('drop_path')
        mods = [block(inplanes, planes, stride, dilation_of[0], downsample, norm_cfg, drop_path=drop[0], **extra)]
        for j in range(1, blocks):
            mods.append(block(outplanes, planes, 1, dilation_of[j], None, norm_cfg, drop_path=drop[j], **extra))
        return nn.Sequential(*mods)

    def residual_blocks(self):
        for name in self.stage_names:
            yield from getattr(self, name)

    def extension_prefixes(self) -> list[str]:
        """Modules that a plain ResNet of this variant lacks: DCN offset convs and plugins.

        A weights file of the plain ResNet fits without them (they keep their initialisation), as
        mmdet's DCN / GCNet configs start from torchvision's ResNet-50.
        """
        out = []
        for name in self.stage_names:
            for j, blk in enumerate(getattr(self, name)):
                out += [f'{name}.{j}.{p}' for p in blk.plugin_names]
                if getattr(blk, 'with_dcn', False) and hasattr(blk.conv2, 'conv_offset'):
                    out.append(f'{name}.{j}.conv2.conv_offset')
        return out

    def extension_keys(self) -> list[str]:
        prefixes = tuple(p + '.' for p in self.extension_prefixes())
        return [k for k in self.state_dict() if k.startswith(prefixes)] if prefixes else []

    def _reset_parameters(self):
        skip = tuple(p + '.' for p in self.extension_prefixes())
        for name, m in self.named_modules():
            if skip and (name + '.').startswith(skip):
                continue  # DCN offsets start at zero (mmcv), plugins keep their own init
            deform = getattr(m, 'deform_groups', None) is not None and isinstance(getattr(m, 'weight', None),
                                                                                  nn.Parameter)
            if isinstance(m, nn.Conv2d) or deform:
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self._input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i, name in enumerate(self.stage_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(self._output(x))
        return tuple(outs)
