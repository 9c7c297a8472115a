"""The behaviour tests of mmdet's, mmseg's and mmpretrain's own ResNet suites
(``tests/test_models/test_backbones/test_resnet.py``), rewritten for BagResNet: shapes, stems, style,
frozen stages, norm_eval, zero init, with_cp, dcn, plugins, multi_grid and invalid arguments. Where the
peers only check a shape, these also compare numbers with the peer's own ResNet (same weights).
"""
from __future__ import annotations

import pytest
import torch
from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from backbones import BagResNet
from backbones.checkpoint import convert_backbone_state
from backbones.resnet import BasicBlock, Bottleneck

DCN = dict(type='DCN', deform_groups=1, fallback_on_stride=False)
GEN_ATT = dict(type='GeneralizedAttention', spatial_range=-1, num_heads=8, attention_type='0010', kv_stride=2)


def blocks(model):
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]


def norms_training(modules):
    return {m.training for m in modules if isinstance(m, _BatchNorm)}


def randomize(model: nn.Module, seed: int) -> None:
    """Every parameter and BN statistic random (a plugin's zero-initialised last conv included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if 'running_var' in name
                        else torch.randn(t.shape, generator=g) * 0.1)


def same_weights(ref, ours):
    ours.load_state_dict(convert_backbone_state(ref.state_dict(), ours.state_dict()), strict=True)
    return ref.eval(), ours.eval()


def max_rel_diff(a_outs, b_outs):
    assert len(a_outs) == len(b_outs)
    return max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(a_outs, b_outs))


# -- invalid arguments ------------------------------------------------------------------------------

@pytest.mark.parametrize('kwargs, match', [
    (dict(depth=20), 'depth must be one of'),
    (dict(depth=50, num_stages=0), 'num_stages must be in 1..4'),
    (dict(depth=50, num_stages=5), 'num_stages must be in 1..4'),
    (dict(depth=50, strides=(1,), dilations=(1, 1), num_stages=3), 'one entry per stage'),
    (dict(depth=50, style='tensorflow'), "style must be 'pytorch' or 'caffe'"),
    (dict(depth=50, dcn=DCN, stage_with_dcn=(True,)), r'stage_with_dcn \(True,\) needs one entry per stage'),
    (dict(depth=50, dcn=DCN, conv_cfg=dict(type='Conv')), 'conv_cfg=.* with dcn'),
    (dict(depth=18, dcn=DCN), 'dcn needs bottleneck blocks'),
    (dict(depth=50, plugins=[dict(cfg=dict(type='ContextBlock', ratio=1 / 16), stages=(False, True, True),
                                  position='after_conv3')]), r'plugin stages .* need one entry per stage \(4\)'),
    (dict(depth=50, plugins=[dict(cfg=dict(type='ContextBlock', ratio=1 / 16), position='after_conv4')]),
     'plugin position must be one of'),
    (dict(depth=50, plugins=[dict(cfg=dict(type='ContextBlock', ratio=1 / 16), position='after_conv3')] * 2),
     "two plugins in one block are named 'context_block'"),
    (dict(depth=50, plugins=[dict(cfg=dict(type='WrongPlugin'), position='after_conv3')]),
     "plugin type 'WrongPlugin' is not registered"),
    (dict(depth=18, plugins=[dict(cfg=dict(type='ContextBlock', ratio=1 / 16), position='after_conv3')]),
     'plugins need bottleneck blocks'),
    (dict(depth=18, plugins=[dict(cfg=GEN_ATT, position='after_conv2')]), 'plugins need bottleneck blocks'),
    (dict(depth=50, variant='A', deep_stem=True), "deep_stem=True contradicts variant='A'"),
    (dict(depth=50, variant='C', deep_stem=False), "deep_stem=False contradicts variant='C'"),
    (dict(depth=50, variant='B', avg_down=True), "avg_down=True contradicts variant='B'"),
    (dict(depth=50, variant='D', style='caffe'), "style='caffe' contradicts variant='D'"),
    (dict(depth=50, avg_down=True), 'avg_down=True without deep_stem=True is none of the variants'),
    (dict(depth=50, style='caffe', deep_stem=True), "style='caffe' with deep_stem=True is none of the variants"),
    (dict(depth=50, zero_gamma=True, zero_init_residual=False), 'disagree'),
    (dict(depth=50, dilations=(1, 1, 2, 4), strides=(1, 2, 1, 1), multi_grid=(1, 2)),
     r'multi_grid \(1, 2\) needs one dilation per block of the last stage \(3 blocks\)'),
    (dict(depth=50, defaults='mmfoo'), 'defaults must be one of'),
    (dict(depth=50, variant='E'), 'variant must be one of'),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BagResNet(**kwargs)


def test_pretrained_must_be_a_string():
    with pytest.raises(TypeError, match='pretrained must be a str'):
        BagResNet(depth=18, pretrained=0)


# -- mmdet's spellings of the variant, and defaults ---------------------------------------------------

@pytest.mark.parametrize('kwargs, variant', [
    (dict(style='caffe'), 'A'), (dict(style='pytorch'), 'B'), (dict(deep_stem=True), 'C'),
    (dict(deep_stem=True, avg_down=True), 'D'), (dict(style='pytorch', deep_stem=True, avg_down=True), 'D'),
    (dict(variant='C', deep_stem=True, avg_down=False, style='pytorch'), 'C'), (dict(), 'D'),
])
def test_mmdet_spellings_select_the_variant(kwargs, variant):
    model = BagResNet(depth=50, base_channels=2, **kwargs)
    assert model.variant == variant
    assert model.style == ('caffe' if variant == 'A' else 'pytorch')
    assert (model.deep_stem, model.avg_down) == (variant in 'CD', variant == 'D')
    assert isinstance(model.conv1, nn.Sequential) == (variant in 'CD')
    down = model.layer2[0].downsample
    assert isinstance(down[0], nn.AvgPool2d) == (variant == 'D')


def test_bottleneck_style_places_the_stride():
    a = BagResNet(depth=50, variant='A', base_channels=4).layer2[0]   # caffe
    b = BagResNet(depth=50, variant='B', base_channels=4).layer2[0]   # pytorch
    assert (a.conv1.stride, a.conv2.stride) == ((2, 2), (1, 1))
    assert (b.conv1.stride, b.conv2.stride) == ((1, 1), (2, 2))


def test_each_toolbox_defaults_where_the_config_omits_a_value():
    """``defaults='mmdet'`` fills omitted arguments with mmdet's ResNet defaults, 'mmseg' with mmseg's; without
    it, the project's, whichever registry builds it and whatever default scope a Runner left behind."""
    from mmdet.registry import MODELS as DET
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG

    from backbones import MODELS as OURS
    cfg = dict(type='bagtricks.BagResNet', depth=18, base_channels=8)
    det, seg = DET.build(dict(cfg, defaults='mmdet')), SEG.build(dict(cfg, defaults='mmseg'))
    ours = OURS.build(dict(cfg, type='BagResNet'))
    for unstated in (DET.build(dict(cfg)), SEG.build(dict(cfg))):  # no hidden choice by the building registry
        assert (unstated.defaults, unstated.variant, unstated.zero_gamma) == ('bagtricks', 'D', False)
    assert (det.defaults, det.variant, det.norm_eval, det.zero_gamma, det.stem_channels) == ('mmdet', 'B', True, True, 8)
    assert (seg.defaults, seg.variant, seg.norm_eval, seg.zero_gamma, seg.stem_channels) == ('mmseg', 'B', False, True, 64)
    assert (ours.defaults, ours.variant, ours.norm_eval, ours.zero_gamma, ours.stem_channels) == \
        ('bagtricks', 'D', False, False, 64)
    with DefaultScope.overwrite_default_scope('mmdet'):  # e.g. left behind by an mmdet Runner
        direct = BagResNet(depth=18, base_channels=8)
    assert (direct.defaults, direct.variant, direct.norm_eval, direct.zero_gamma) == ('bagtricks', 'D', False, False)
    pre = BagResNet(depth=50, base_channels=2, defaults='mmpretrain')
    assert pre.out_indices == (3,) and len(pre(torch.randn(2, 3, 32, 32))) == 1
    # zero gamma, given: both bn weights and biases of every last BN start at zero (mmdet's check)
    for model in (det, BagResNet(depth=50, base_channels=2, zero_init_residual=True)):
        for blk in blocks(model):
            assert not blk.last_bn().weight.any() and not blk.last_bn().bias.any()
    for blk in blocks(BagResNet(depth=50, base_channels=2, zero_init_residual=False)):
        assert blk.last_bn().weight.any()


def test_stem_channels():
    # mmdet: stem_channels defaults to base_channels
    for kwargs, stem in ((dict(), 64), (dict(base_channels=3), 3), (dict(stem_channels=3), 3),
                         (dict(stem_channels=3, base_channels=2), 3)):
        model = BagResNet(depth=50, variant='B', defaults='mmdet', **kwargs)
        assert model.stem_channels == stem and model.conv1.out_channels == stem
        assert model.bn1.num_features == stem and model.layer1[0].conv1.in_channels == stem
    # the project's (and mmseg's) default: 64, whatever the base width
    assert BagResNet(depth=50, variant='B', base_channels=3).conv1.out_channels == 64
    # V1d stem with stem_channels=6: 3-3-6
    stem = BagResNet(depth=50, variant='D', stem_channels=6).conv1
    assert [stem[i].out_channels for i in (0, 3, 6)] == [3, 3, 6]
    assert [stem[i].num_features for i in (1, 4)] == [3, 3]


# -- shapes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('variant', ['A', 'B', 'C', 'D'])
def test_forward_shapes(variant):
    model = BagResNet(depth=18, variant=variant).train()
    feats = model(torch.randn(2, 3, 32, 32))  # batch 2: BN in train mode on the 1x1 last stage
    assert [tuple(f.shape) for f in feats] == [(2, 64, 8, 8), (2, 128, 4, 4), (2, 256, 2, 2), (2, 512, 1, 1)]
    model = BagResNet(depth=50, variant=variant, base_channels=1, out_indices=(0, 1, 2)).train()
    assert [tuple(f.shape) for f in model(torch.randn(2, 3, 32, 32))] == [(2, 4, 8, 8), (2, 8, 4, 4), (2, 16, 2, 2)]


def test_group_norm_and_conv_cfg():
    model = BagResNet(depth=50, variant='B', base_channels=4, norm_cfg=dict(type='GN', num_groups=2, requires_grad=True))
    norms = [m for m in model.modules() if isinstance(m, (nn.GroupNorm, _BatchNorm))]
    assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
    feats = model.train()(torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [16, 32, 64, 128]
    from mmcv.cnn.bricks.conv_ws import ConvWS2d
    model = BagResNet(depth=18, variant='D', base_channels=4, stem_channels=8, conv_cfg=dict(type='ConvWS'))
    assert all(isinstance(m, ConvWS2d) for m in model.modules() if isinstance(m, nn.Conv2d))
    assert model(torch.randn(2, 3, 32, 32))[-1].shape == (2, 32, 1, 1)


# -- training state ----------------------------------------------------------------------------------

def test_norm_eval_keeps_every_bn_in_eval_mode():
    model = BagResNet(depth=50, variant='D', base_channels=1, norm_eval=True).train()
    assert norms_training(model.modules()) == {False}
    model = BagResNet(depth=50, variant='D', base_channels=1, norm_eval=False).train()
    assert norms_training(model.modules()) == {True}


@pytest.mark.parametrize('variant', ['A', 'D'])
def test_frozen_stages(variant):
    model = BagResNet(depth=50, variant=variant, base_channels=2, frozen_stages=1).train()
    frozen = [model.conv1, model.bn1, model.layer1]
    for m in frozen:
        assert norms_training(m.modules()) <= {False}  # A's conv1 is a single conv, D's holds two BNs
        assert not any(p.requires_grad for p in m.parameters())
    assert norms_training(model.layer2.modules()) == {True}
    assert all(p.requires_grad for p in model.layer2.parameters())
    # the frozen part gets no gradient, the rest does
    sum(f.sum() for f in model(torch.randn(2, 3, 32, 32))).backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert all(p.grad is not None for p in model.layer2.parameters())


@pytest.mark.parametrize('depth', [18, 50])
def test_with_cp_recomputes_each_block_and_gives_the_same_gradients(depth):
    torch.manual_seed(0)
    ref = BagResNet(depth=depth, variant='D', base_channels=4, stem_channels=8)
    cp = BagResNet(depth=depth, variant='D', base_channels=4, stem_channels=8, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    assert all(b.with_cp for b in blocks(cp)) and not any(b.with_cp for b in blocks(ref))
    calls = {'ref': 0, 'cp': 0}
    ref.layer3[0].conv1.register_forward_hook(lambda *a: calls.__setitem__('ref', calls['ref'] + 1))
    cp.layer3[0].conv1.register_forward_hook(lambda *a: calls.__setitem__('cp', calls['cp'] + 1))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    grads = []
    for model in (ref, cp):
        model.train()
        out = model(x)
        sum((f ** 2).mean() for f in out).backward()
        grads.append({k: p.grad for k, p in model.named_parameters()})
    assert calls == {'ref': 1, 'cp': 2}  # forward + the recomputation in backward
    assert max((grads[0][k] - grads[1][k]).abs().max().item() for k in grads[0]) < 1e-6
    cp.eval()  # in eval mode, nothing is checkpointed
    with torch.no_grad():
        cp(x)
    assert calls['cp'] == 3


# -- dcn, plugins, multi_grid against the peers' own ResNets -----------------------------------------

@pytest.mark.parametrize('dcn_type, cls', [('DCN', DeformConv2dPack), ('DCNv2', ModulatedDeformConv2dPack)])
@pytest.mark.parametrize('variant', ['A', 'B', 'D'])
def test_dcn_matches_mmdet(variant, dcn_type, cls):
    from mmdet.models.backbones import ResNet, ResNetV1d
    dcn = dict(type=dcn_type, deform_groups=1, fallback_on_stride=False)
    stages = (False, True, False, True)
    mm = dict(depth=50, base_channels=8, dcn=dcn, stage_with_dcn=stages)
    ref = ResNetV1d(**mm) if variant == 'D' else ResNet(style='caffe' if variant == 'A' else 'pytorch', **mm)
    ours = BagResNet(variant=variant, defaults='mmdet', **mm)  # mmdet's stem width: base_channels
    for i, name in enumerate(ours.stage_names):
        assert all(isinstance(b.conv2, cls) == stages[i] for b in getattr(ours, name))
    assert set(ours.state_dict()) == set(convert_backbone_state(ref.state_dict(), ours.state_dict()))
    randomize(ref, seed=3)
    same_weights(ref, ours)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert max_rel_diff(ref(x), ours(x)) < 1e-5


def test_plugins_match_mmdet():
    from mmdet.models.backbones import ResNet
    plugins = [
        dict(cfg=GEN_ATT, stages=(False, True, True, True), position='after_conv2'),
        dict(cfg=dict(type='NonLocal2d'), position='after_conv2'),
        dict(cfg=dict(type='ContextBlock', ratio=1. / 16), stages=(False, True, True, False), position='after_conv3'),
        dict(cfg=dict(type='ContextBlock', ratio=1. / 4, postfix=2), stages=(True, False, False, False),
             position='after_conv1'),
    ]
    ours = BagResNet(depth=50, variant='B', base_channels=8, plugins=plugins, defaults='mmdet')
    for i, name in enumerate(ours.stage_names):
        planes = 8 * 2 ** i
        for b in getattr(ours, name):
            assert b.nonlocal_block.in_channels == planes
            assert hasattr(b, 'gen_attention_block') == (i > 0)
            assert (b.context_block.in_channels == planes * 4) if 0 < i < 3 else not hasattr(b, 'context_block')
            assert (b.context_block2.in_channels == planes) if i == 0 else not hasattr(b, 'context_block2')
    ref = ResNet(depth=50, base_channels=8, plugins=plugins)
    randomize(ref, seed=5)
    same_weights(ref, ours)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        feats = ours(x)
        assert [tuple(f.shape) for f in feats] == [(1, 32, 16, 16), (1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
        assert max_rel_diff(ref(x), feats) < 1e-5
    # the plugins and offsets are the "extension": not part of a plain ResNet file
    prefixes = ours.extension_prefixes()
    assert 'layer2.0.gen_attention_block' in prefixes and 'layer1.2.context_block2' in prefixes
    assert 'layer4.0.context_block' not in prefixes


def test_multi_grid_and_contract_dilation_match_mmseg():
    from mmseg.models.backbones import ResNetV1c
    kw = dict(depth=50, base_channels=8, strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True)
    plain = BagResNet(variant='C', **dict(kw, contract_dilation=False))
    assert {b.conv2.dilation for b in plain.layer3} == {(2, 2)} and {b.conv2.dilation for b in plain.layer4} == {(4, 4)}
    assert [b.conv2.dilation for b in BagResNet(variant='C', **kw).layer4] == [(2, 2), (4, 4), (4, 4)]
    ours = BagResNet(variant='C', multi_grid=(1, 2, 4), **kw)
    assert [b.conv2.dilation for b in ours.layer4] == [(1, 1), (2, 2), (4, 4)]
    assert [b.conv2.dilation for b in ours.layer3[:2]] == [(1, 1), (2, 2)]  # contracted first block
    ref = ResNetV1c(multi_grid=(1, 2, 4), **kw)
    randomize(ref, seed=7)
    same_weights(ref, ours)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        feats = ours(x)
        assert [f.shape[-1] for f in feats] == [16, 8, 8, 8]
        assert max_rel_diff(ref(x), feats) < 1e-5


def test_drop_path_rate_is_stochastic_depth_in_training_only():
    """mmpretrain's drop_path_rate: per-sample residual drop, rising linearly to the rate; no new keys."""
    torch.manual_seed(0)
    ref = BagResNet(depth=18, variant='D', base_channels=8, stem_channels=16, norm_eval=True)
    ours = BagResNet(depth=18, variant='D', base_channels=8, stem_channels=16, norm_eval=True, drop_path_rate=0.4)
    ours.load_state_dict(ref.state_dict(), strict=True)
    probs = [getattr(b.drop_path, 'drop_prob', 0.0) for b in blocks(ours)]
    assert probs[0] == 0.0 and abs(probs[-1] - 0.4) < 1e-6 and probs == sorted(probs) and len(probs) == 8
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref.eval(), ours.eval()
        assert torch.equal(ref(x)[-1], ours(x)[-1])  # eval: nothing dropped
        ref.train(), ours.train()  # BN stays in eval (norm_eval): only the drop is random
        base = ref(x)[-1]
        torch.manual_seed(2)
        a = ours(x)[-1]
        torch.manual_seed(2)
        b = ours(x)[-1]
        torch.manual_seed(3)
        c = ours(x)[-1]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, base)
    with pytest.raises(ValueError, match=r'drop_path_rate must be in \[0, 1\)'):
        BagResNet(depth=18, drop_path_rate=1.0)
