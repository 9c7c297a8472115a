"""The backbones are the paper's architectures: checked against torchvision and mmdet/mmseg."""
import math

import pytest
import torch
import torchvision
from torch import nn

from backbones import BagResNet
from backbones.checkpoint import convert_backbone_state, load_backbone_weights
from safe_read import load_weights_file
from user_errors import CheckpointError


def randomize_norm_stats(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so eval-mode outputs depend on all of them."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def test_resnet_b50_matches_torchvision_logits(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50()
    randomize_norm_stats(tv)
    path = tmp_path / 'tv_resnet50.pth'
    torch.save(tv.state_dict(), path)

    ours = BagResNet(depth=50, variant='B')
    assert load_backbone_weights(ours, str(path)) == len(ours.state_dict())
    tv.eval(), ours.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feat = ours(x)[-1]
        logits = tv.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(feat, 1), 1))
        ref = tv(x)
    assert feat.shape == (2, 2048, 7, 7)
    assert (logits - ref).abs().max().item() < 1e-4


def _mm_pair(mm_cls, variant, depth, **kw):
    torch.manual_seed(depth)
    ref = mm_cls(depth=depth, **kw)
    randomize_norm_stats(ref, seed=depth)
    ours = BagResNet(depth=depth, variant=variant, **{k: v for k, v in kw.items() if k not in ('style', 'deep_stem')})
    state = convert_backbone_state(ref.state_dict(), ours.state_dict())
    ours.load_state_dict(state, strict=True)
    ref.eval(), ours.eval()  # mmdet's ResNet.train() returns None
    return ref, ours


@pytest.mark.parametrize('depth', [18, 50, 101])
@pytest.mark.parametrize('variant', ['A', 'C', 'D'])
def test_matches_mmdet_resnets(variant, depth):
    from mmdet.models.backbones import ResNet, ResNetV1d
    # mmdet has no ResNetV1c class: its V1c is ResNet(deep_stem=True), as mmseg's ResNetV1c defines it
    mm_cls, kw = {'A': (ResNet, dict(style='caffe')), 'C': (ResNet, dict(deep_stem=True)),
                  'D': (ResNetV1d, {})}[variant]
    ref, ours = _mm_pair(mm_cls, variant, depth, **kw)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert len(a) == len(b) == 4
    for fa, fb in zip(a, b):
        assert fa.shape == fb.shape
        assert (fa - fb).abs().max().item() < 1e-4


def test_dilated_d50_matches_mmseg_fcn_backbone():
    """FCN-D8 layout: strides (1,2,1,1), dilations (1,1,2,4), contracted first dilation, output stride 8."""
    from mmseg.models.backbones import ResNetV1d
    kw = dict(strides=(1, 2, 1, 1), dilations=(1, 1, 2, 4), contract_dilation=True)
    ref, ours = _mm_pair(ResNetV1d, 'D', 50, **kw)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert [f.shape[-1] for f in b] == [16, 8, 8, 8]
    for fa, fb in zip(a, b):
        assert (fa - fb).abs().max().item() < 1e-4


def test_variants_differ_where_the_paper_says():
    a, b, c, d = (BagResNet(depth=50, variant=v) for v in 'ABCD')
    blk_a, blk_b = a.layer2[0], b.layer2[0]
    assert (blk_a.conv1.stride, blk_a.conv2.stride) == ((2, 2), (1, 1))  # A: stride on the first 1x1
    assert (blk_b.conv1.stride, blk_b.conv2.stride) == ((1, 1), (2, 2))  # B: stride on the 3x3
    assert [m.out_channels for m in c.conv1 if isinstance(m, nn.Conv2d)] == [32, 32, 64]  # C: deep stem
    assert isinstance(d.layer2[0].downsample[0], nn.AvgPool2d)  # D: avg pool, then stride-1 1x1
    assert d.layer2[0].downsample[1].stride == (1, 1)
    assert c.layer2[0].downsample[0].stride == (2, 2)


def test_zero_gamma_and_xavier_init():
    m = BagResNet(depth=50, variant='D', zero_gamma=True, init='xavier')
    blocks = list(m.residual_blocks())
    assert len(blocks) == 16
    for blk in blocks:
        assert torch.count_nonzero(blk.bn3.weight) == 0
        assert torch.all(blk.bn1.weight == 1) and torch.all(blk.bn2.weight == 1)
    for conv in (m.conv1[0], m.layer3[2].conv2, m.layer4[0].downsample[1]):
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = conv.weight
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.9 * bound  # actually uniform over the full range
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.1 * bound
    basic = BagResNet(depth=18, variant='B', zero_gamma=True)
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in basic.residual_blocks())
    off = BagResNet(depth=18, variant='B')
    assert all(torch.all(b.bn2.weight == 1) for b in off.residual_blocks())


def test_frozen_stages_and_norm_eval():
    m = BagResNet(depth=18, variant='D', frozen_stages=1, norm_eval=True)
    m.train()
    assert not any(p.requires_grad for p in m.conv1.parameters())
    assert not any(p.requires_grad for p in m.layer1.parameters())
    assert all(p.requires_grad for p in m.layer2.parameters())
    assert not any(mod.training for mod in m.modules() if isinstance(mod, nn.BatchNorm2d))


def test_wrong_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / 'r18.pth'
    torch.save(BagResNet(depth=18, variant='D').state_dict(), path)
    with pytest.raises(CheckpointError, match=r"does not fit BagResNet\(depth=50, variant='D'\).*missing keys"):
        load_backbone_weights(BagResNet(depth=50, variant='D'), str(path))
    with pytest.raises(CheckpointError, match=r'missing keys \(first: conv1.weight'):
        load_backbone_weights(BagResNet(depth=18, variant='B'), str(path))  # deep stem into a 7x7 stem


def test_full_checkpoint_and_prefix_forms_load(tmp_path):
    src = BagResNet(depth=18, variant='D')
    state = {f'backbone.{k}': v for k, v in src.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, 512)
    path = tmp_path / 'full.pth'
    torch.save({'meta': {'epoch': 3}, 'state_dict': state}, path)
    dst = BagResNet(depth=18, variant='D')
    load_backbone_weights(dst, str(path))
    assert torch.equal(dst.layer3[0].downsample[1].weight, src.layer3[0].downsample[1].weight)


def test_weights_files_refuse_arbitrary_pickles(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'w': torch.zeros(1), 'obj': torchvision.transforms.ToTensor()}, path)
    with pytest.raises(CheckpointError, match='refusing to unpickle'):
        load_weights_file(str(path))
    with pytest.raises(CheckpointError, match='not found'):
        load_weights_file(str(tmp_path / 'missing.pth'))
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='not a readable torch weights file'):
        load_weights_file(str(bad))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match='variant must be one of'):
        BagResNet(variant='E')
    with pytest.raises(ValueError, match='depth must be one of'):
        BagResNet(depth=42)
    with pytest.raises(ValueError, match='contradicts'):
        BagResNet(variant='D', style='caffe')


def test_params_and_flops_match_table5():
    from backbones.complexity import PAPER_TABLE5, complexity
    got = {v: complexity(50, v) for v in 'ABCD'}
    for v, c in got.items():
        ref = PAPER_TABLE5[v]
        assert abs(c['params_m'] - ref['independent_params_m']) / ref['independent_params_m'] < 0.01, (v, c)
        assert abs(c['gmacs'] - ref['gflops']) / ref['gflops'] < 0.02, (v, c)  # paper counts MACs
    assert got['A']['gmacs'] < got['B']['gmacs'] < got['C']['gmacs'] <= got['D']['gmacs']


def test_convert_weights_tool(tmp_path):
    import subprocess
    import sys
    from mmdet.models.backbones import ResNetV1d
    src = tmp_path / 'mmdet_v1d18.pth'
    ref = ResNetV1d(depth=18)
    torch.save({'meta': {}, 'state_dict': {f'backbone.{k}': v for k, v in ref.state_dict().items()}}, src)
    dst = tmp_path / 'out' / 'r18d.pth'
    tool = [sys.executable, 'tools/convert_weights.py', str(src)]
    ok = subprocess.run(tool + [str(dst), '--depth', '18', '--variant', 'D'], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    state = torch.load(dst, weights_only=True)
    # mmdet's deep stem and layer1's pool-less downsample land on the timm-style keys
    assert torch.equal(state['conv1.6.weight'], ref.stem[6].weight)
    assert torch.equal(state['bn1.running_var'], ref.stem[7].running_var)
    assert torch.equal(state['layer2.0.downsample.1.weight'], ref.layer2[0].downsample[1].weight)
    bad = subprocess.run(tool + [str(tmp_path / 'b.pth'), '--depth', '18', '--variant', 'B'],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and 'does not fit BagResNet(depth=18' in bad.stderr
    assert not (tmp_path / 'b.pth').exists() and not (tmp_path / 'b.pth.tmp').exists()


def test_registry_builds_in_its_own_scope_whatever_scope_a_runner_left_behind():
    import mmdet.models  # noqa: F401
    from mmengine.registry import DefaultScope
    from backbones.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):  # what an mmdet Runner leaves as current scope
        m = MODELS.build(dict(type='BagResNet', depth=18, variant='C'))
        assert DefaultScope.get_current_instance().scope_name == 'mmdet'
    assert isinstance(m, BagResNet) and m.variant == 'C'
