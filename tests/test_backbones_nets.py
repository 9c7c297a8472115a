"""The paper's other two networks: Inception-V3 and MobileNet v1 equal torchvision's / timm's given the same
weights (stage features and logits, train and eval mode), their sizes are the paper's, the Xavier init and
the refusal of zero gamma, their configs change one trick per row exactly as the ResNet rows do, and the
grid's MobileNet rows are classification only."""
from __future__ import annotations

import importlib.util
import math
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

import classification  # noqa: F401  (registers the classifier, schedulers, transforms)
import engine  # noqa: F401  (registers MixedPrecisionOptimWrapper)
from backbones import BagInceptionV3, BagMobileNetV1
from backbones.complexity import net_complexity
from backbones.registry import MODELS
from classification.label_tricks import mixup, sample_mixup, smooth_targets
from classification.trick_report import trick_table
from user_errors import CheckpointError

timm = pytest.importorskip('timm')
torchvision = pytest.importorskip('torchvision')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG = osp.join(REPO, 'configs', 'cls')


def cfg(name):
    return Config.fromfile(osp.join(CFG, name))


def randomize_bn_stats(model: torch.nn.Module, seed: int, size: int) -> None:
    """Random BN affine parameters, and running statistics measured on random images (so eval mode is
    neither the identity normalisation nor exploding activations)."""
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:
        m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batch
    with torch.no_grad():
        model.train()(torch.randn(2, 3, size, size, generator=g))
    for m in bns:
        m.momentum = 0.1


def stage_outputs(model: torch.nn.Module, names: list[str]) -> dict:
    """Forward hooks recording the outputs of the named submodules."""
    got = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(lambda m, a, out, name=name: got.__setitem__(name, out))
    return got


def classifier_with(backbone: dict, fc: torch.nn.Linear, dropout: float = 0.0):
    model = MODELS.build(dict(type='BagClassifier', backbone=backbone, num_classes=fc.out_features, dropout=dropout))
    model.head.fc.load_state_dict(fc.state_dict())
    return model


# ---------------------------------------------------------------- Inception-V3 = torchvision's inception_v3
@pytest.fixture(scope='module')
def torchvision_inception(tmp_path_factory):
    torch.manual_seed(0)
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
    randomize_bn_stats(ref, 1, 299)  # the auxiliary head needs 299
    path = str(tmp_path_factory.mktemp('tv') / 'inception_v3.pth')
    torch.save(ref.state_dict(), path)  # the whole classifier, AuxLogits and fc included
    ref.aux_logits, ref.AuxLogits = False, None  # the network the paper trains (GluonCV): no auxiliary head
    return ref, path


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_inception_v3_equals_torchvision(torchvision_inception, mode):
    ref, path = torchvision_inception
    ref.load_state_dict(torch.load(path, weights_only=True), strict=False)  # a train-mode run moved BN stats
    ref = ref.train(mode == 'train')
    # loaded through the config path the det/seg tools use: init_cfg Pretrained -> strict load
    ours = classifier_with(dict(type='BagInceptionV3', init_cfg=dict(type='Pretrained', checkpoint=path)),
                           ref.fc, dropout=0.5)
    ours.backbone.init_weights()
    ours.train(mode == 'train')
    taps = ['Conv2d_4a_3x3', 'Mixed_5d', 'Mixed_6e', 'Mixed_7c']
    ref_feats = stage_outputs(ref, taps)
    x = torch.randn(2, 3, 299, 299, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(3)  # the same dropout mask in train mode (same number of draws, same order)
    ref_logits = ref(x)
    torch.manual_seed(3)
    feats = ours.backbone(x)
    logits = ours.head(feats[-1])
    assert [tuple(f.shape) for f in feats] == [(2, 192, 71, 71), (2, 288, 35, 35), (2, 768, 17, 17), (2, 2048, 8, 8)]
    for f, name in zip(feats, taps):
        assert (f - ref_feats[name]).abs().max().item() < 1e-4, name
    assert (logits - ref_logits).abs().max().item() < 1e-4
    if mode == 'train':  # dropout acted (else train and eval logits agree) and BN statistics moved alike
        assert (logits - ours.eval().head(feats[-1])).abs().max().item() > 1e-3
        assert torch.allclose(ours.backbone.Mixed_7c.branch_pool.bn.running_mean,
                              ref.Mixed_7c.branch_pool.bn.running_mean, atol=1e-6)


def test_inception_transform_input_as_torchvision(torchvision_inception):
    ref, path = torchvision_inception
    ref.load_state_dict(torch.load(path, weights_only=True), strict=False)
    ref = ref.eval()
    ref.transform_input = True
    try:
        ours = BagInceptionV3(transform_input=True, out_indices=(3,))
        ours.load_weights(path)
        ours.eval()
        x = torch.randn(1, 3, 160, 160)
        got = stage_outputs(ref, ['Mixed_7c'])
        ref(x)
        assert (ours(x)[0] - got['Mixed_7c']).abs().max().item() < 1e-4
    finally:
        ref.transform_input = False


def test_inception_loads_torchvision_name_from_the_local_cache(torchvision_inception, tmp_path):
    """``torchvision://inception_v3_google`` resolves (mmengine's table) to torch.hub's cache; nothing downloads."""
    from backbones.pretrained import cache_path, checkpoint_url
    _, path = torchvision_inception
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / 'hub'))
    try:
        name = 'torchvision://inception_v3_google'
        with pytest.raises(CheckpointError, match='not in the local cache'):
            BagInceptionV3(init_cfg=dict(type='Pretrained', checkpoint=name)).init_weights()
        cached = cache_path(checkpoint_url(name))
        os.makedirs(osp.dirname(cached))
        os.symlink(path, cached)
        # a list init_cfg: mmengine's initialisers first, then the strict load wins
        net = BagInceptionV3(init_cfg=[dict(type='Constant', val=0.0, layer='Conv2d'),
                                       dict(type='Pretrained', checkpoint=name)])
        net.init_weights()
        ref = torch.load(path, weights_only=True)
        assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, ref['Mixed_7c.branch_pool.conv.weight'])
    finally:
        torch.hub.set_dir(old)


def test_inception_smallest_input_and_loading_errors(tmp_path):
    net = BagInceptionV3(out_indices=(0, 1, 2, 3)).eval()
    assert [tuple(f.shape[1:]) for f in net(torch.zeros(1, 3, 75, 75))] == [(192, 15, 15), (288, 7, 7), (768, 3, 3),
                                                                             (2048, 1, 1)]
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 3, 74, 74))
    # a ResNet's weights do not fit: a loud error naming keys, nothing loaded
    from backbones import BagResNet
    torch.save(BagResNet(depth=18).state_dict(), tmp_path / 'r18.pth')
    before = net.Conv2d_1a_3x3.conv.weight.clone()
    with pytest.raises(CheckpointError, match=r'470 missing keys .*Conv2d_1a_3x3.*unexpected keys .*conv1'):
        net.load_weights(str(tmp_path / 'r18.pth'))
    assert torch.equal(before, net.Conv2d_1a_3x3.conv.weight)


# ---------------------------------------------------------------- MobileNet v1 = timm's mobilenetv1_100
@pytest.mark.parametrize('act,mode', [('relu6', 'eval'), ('relu6', 'train'), ('relu', 'eval'), ('relu', 'train')])
def test_mobilenet_equals_timm(tmp_path, act, mode):
    torch.manual_seed(0)
    ref = timm.create_model('mobilenetv1_100', act_layer=act)  # timm's default is ReLU6 (TensorFlow's)
    assert isinstance(ref.bn1.act, torch.nn.ReLU6 if act == 'relu6' else torch.nn.ReLU)
    randomize_bn_stats(ref, 1, 96)
    torch.save(ref.state_dict(), tmp_path / 'mnv1.pth')  # classifier.* included
    ref.train(mode == 'train')
    ours = classifier_with(dict(type='BagMobileNetV1', act=act, init_cfg=dict(type='Pretrained',
                                                                              checkpoint=str(tmp_path / 'mnv1.pth'))),
                           ref.classifier)
    ours.backbone.init_weights()
    ours.train(mode == 'train')
    taps = ['blocks.1', 'blocks.2', 'blocks.3', 'blocks.4']
    ref_feats = stage_outputs(ref, taps)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    ref_logits = ref(x)
    feats = ours.backbone(x)
    assert [tuple(f.shape) for f in feats] == [(2, 128, 56, 56), (2, 256, 28, 28), (2, 512, 14, 14), (2, 1024, 7, 7)]
    for f, name in zip(feats, taps):
        assert (f - ref_feats[name]).abs().max().item() < 1e-4, name
    assert (ours.head(feats[-1]) - ref_logits).abs().max().item() < 1e-4
    # the two activations differ on these weights: the test tells them apart
    if act == 'relu6' and mode == 'eval':
        relu = BagMobileNetV1(act='relu', out_indices=(3,))
        relu.load_state_dict(ours.backbone.state_dict())
        assert (relu.eval()(x)[0] - feats[-1]).abs().max().item() > 1e-2


@pytest.mark.parametrize('width,channels', [(1.0, (128, 256, 512, 1024)), (0.25, (32, 64, 128, 256)),
                                            (0.75, (96, 192, 384, 768))])
def test_mobilenet_width_multiplier_matches_timm(width, channels):
    ours = BagMobileNetV1(width=width)
    assert ours.feat_channels == channels
    from timm.models.efficientnet import _gen_mobilenet_v1  # timm registers only widths 1.0 and 1.25
    ref = _gen_mobilenet_v1('mobilenetv1_100', channel_multiplier=width)
    ref_shapes = {k: tuple(v.shape) for k, v in ref.state_dict().items() if not k.startswith('classifier')}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == ref_shapes


# ---------------------------------------------------------------- sizes: the paper's figures
def test_parameters_and_macs_are_the_papers():
    inc, mob = net_complexity('inception_v3'), net_complexity('mobilenet')
    # exactly the independent implementations' counts
    for c in (inc, mob):
        assert c['ours']['params_m'] == pytest.approx(c['reference']['params_m'], abs=1e-9)
        assert c['ours']['gmacs'] == pytest.approx(c['reference']['gmacs'], rel=1e-9)
    assert inc['ours']['params_aux_m'] == pytest.approx(inc['reference']['params_aux_m'], abs=1e-9)
    # and the paper's: 23.8M (27.2M with the auxiliary head), 4.2M
    assert round(inc['ours']['params_m'], 1) == 23.8 and round(inc['ours']['params_aux_m'], 1) == 27.2
    assert round(mob['ours']['params_m'], 1) == 4.2
    # 5.7 and 0.57 GMACs within 2 % (convolutions + FC as the paper counts; all operators too)
    for c, paper in ((inc, 5.7), (mob, 0.57)):
        assert abs(c['ours']['gmacs_conv_fc'] / paper - 1) < 0.02
        assert abs(c['ours']['gmacs'] / paper - 1) < 0.02
    assert inc['ours']['gmacs_conv_fc'] == pytest.approx(5.713, abs=1e-3)
    assert mob['ours']['gmacs_conv_fc'] == pytest.approx(0.5687, abs=1e-4)


def test_model_table_prints_both_networks():
    spec = importlib.util.spec_from_file_location('model_table', osp.join(REPO, 'tools', 'model_table.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    lines = mod.networks_table()
    assert lines[2].startswith('| Inception-V3 | 299 | 23.83 (27.16 with aux head) | 5.713 (5.731) | '
                               'torchvision inception_v3: 23.83 (27.16), 5.713 | 23.8M (27.2M) | 5.7 | 77.32 / 77.50 |')
    assert lines[3].startswith('| MobileNet (1.0) | 224 | 4.23 | 0.569 (0.579) | timm mobilenetv1_100: 4.23, 0.569 '
                               '| 4.2M | 0.57 | 69.03 / 71.90 |')


# ---------------------------------------------------------------- init, zero gamma, the mm keywords
@pytest.mark.parametrize('net', [BagInceptionV3, BagMobileNetV1])
def test_xavier_init_and_zero_gamma_is_refused(net):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='BagClassifier', num_classes=1000,
                              backbone=dict(type=net.__name__, out_indices=(3,), init='xavier')))
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        # fan_out = all output channels x kernel, for depthwise convs too (torch's and MXNet's Xavier)
        fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = conv.weight.detach().abs().max().item()
        assert w <= bound and (conv.weight.numel() < 500 or w > 0.9 * bound)
    fc = model.head.fc
    assert fc.weight.abs().max().item() <= math.sqrt(6 / (fc.in_features + 1000)) and fc.bias.abs().max() == 0
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(bn.weight.detach().min()) == 1.0 and float(bn.bias.detach().abs().max()) == 0.0 for bn in bns)
    # the reference init is something else (torchvision's truncated normal std 0.1 / timm's fan-out normal)
    other = net(init=net.inits[1], out_indices=(3,))
    first = next(m for m in other.modules() if isinstance(m, torch.nn.Conv2d))
    expected_std = 0.1 if net is BagInceptionV3 else math.sqrt(2 / (9 * first.out_channels))
    assert first.weight.std().item() == pytest.approx(expected_std, rel=0.15)
    with pytest.raises(ValueError, match='zero_gamma=True: .* no residual block .*n/a for this backbone'):
        net(zero_gamma=True)
    with pytest.raises(ValueError, match="init must be one of"):
        net(init='kaiming')
    with pytest.raises(ValueError, match='out_indices'):
        net(out_indices=(2, 1))


@pytest.mark.parametrize('net,stem,first', [(BagInceptionV3, 'Conv2d_1a_3x3', 'Conv2d_3b_1x1'),
                                            (BagMobileNetV1, 'conv_stem', 'blocks.1')])
def test_frozen_stages_and_norm_eval(net, stem, first):
    m = net(frozen_stages=1, norm_eval=True).train()
    assert not any(p.requires_grad for p in m.get_submodule(stem).parameters())
    assert not any(p.requires_grad for p in m.get_submodule(first).parameters())
    later = m.get_submodule(m.stage_names[1][-1])
    assert all(p.requires_grad for p in later.parameters())
    assert all(not b.training for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d))
    assert m.training
    m0 = net(frozen_stages=0).train()
    assert not any(p.requires_grad for p in m0.get_submodule(stem).parameters())
    assert all(p.requires_grad for p in m0.get_submodule(first).parameters())


@pytest.mark.parametrize('net,size', [(BagInceptionV3, 96), (BagMobileNetV1, 64)])
def test_channels_last_gives_the_same_features_in_nchw(net, size):
    torch.manual_seed(0)
    plain = net().eval()
    fast = net(channels_last=True).eval()
    fast.load_state_dict(plain.state_dict())
    assert next(m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)).weight.is_contiguous(
        memory_format=torch.channels_last)
    x = torch.randn(2, 3, size, size)
    for a, b in zip(plain(x), fast(x)):
        assert b.is_contiguous() and (a - b).abs().max().item() < 1e-4 * max(1.0, a.abs().max().item())


def test_both_networks_feed_mmdets_fpn_built_in_its_scope():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        for net, size in (('BagInceptionV3', 139), ('BagMobileNetV1', 128)):
            backbone = MMDET_MODELS.build(dict(type=f'bagtricks.{net}', frozen_stages=1, norm_eval=True))
            neck = MMDET_MODELS.build(dict(type='FPN', in_channels=list(backbone.feat_channels), out_channels=32,
                                           num_outs=5))
            outs = neck(backbone.eval()(torch.randn(1, 3, size, size)))
            assert len(outs) == 5 and all(o.shape[1] == 32 for o in outs)
            assert outs[0].shape[-1] > outs[-1].shape[-1]


# ---------------------------------------------------------------- configs: one change per row, like ResNet's
NETS = {'inception_v3': 'BagInceptionV3', 'mobilenet': 'BagMobileNetV1'}
CHAIN = [  # (row of a network, its predecessor in the same network, the trick-table rows that differ)
    ('{n}_efficient.py', '{n}_baseline.py', {'batch', 'linear lr scaling', 'lr warmup', 'no bias decay',
                                             'mixed precision'}),
    ('{n}_cosine.py', '{n}_efficient.py', {'lr decay'}),
    ('{n}_cosine_ls.py', '{n}_cosine.py', {'label smoothing'}),
    ('{n}_cosine_ls_kd.py', '{n}_cosine_ls.py', {'distillation'}),
    ('{n}_cosine_ls_mixup.py', '{n}_cosine_ls.py', {'mixup', 'epochs'}),
    ('{n}_tricks.py', '{n}_cosine_ls_mixup.py', {'distillation'}),
]
# the same row of the ResNet chain: only the network (and what belongs to it) differs
RESNET_ROW = {'baseline': 'resnet50_baseline.py', 'efficient': 'resnet50_efficient.py',
              'cosine': 'resnet50d_cosine.py', 'cosine_ls': 'resnet50d_cosine_ls.py',
              'cosine_ls_kd': 'resnet50d_cosine_ls_kd.py', 'cosine_ls_mixup': 'resnet50d_cosine_ls_mixup.py',
              'tricks': 'resnet50d_tricks.py'}
NETWORK_ROWS = {'inception_v3': {'backbone', 'zero gamma', 'input', 'classifier dropout'},
                'mobilenet': {'backbone', 'zero gamma'}}
ROWS = [(c.format(n=n), p.format(n=n), changed) for n in NETS for c, p, changed in CHAIN]
ROWS += [(f'{n}_{row}.py', resnet, NETWORK_ROWS[n]) for n in NETS for row, resnet in RESNET_ROW.items()]
FASHION = ['fashion_mobilenet_efficient.py', 'fashion_mobilenet_cosine.py', 'fashion_mobilenet_cosine_ls.py',
           'fashion_mobilenet_cosine_ls_kd.py', 'fashion_mobilenet_cosine_ls_mixup.py', 'fashion_mobilenet_tricks.py']
ROWS += [(c.format(n='fashion_mobilenet'), p.format(n='fashion_mobilenet'), changed) for c, p, changed in CHAIN[1:]]
ROWS += [(f, f.replace('mobilenet', 'd'), {'backbone', 'zero gamma'}) for f in FASHION]  # fashion_d_* rows
NEW_CONFIGS = sorted({r[0] for r in ROWS} | {f'{n}_baseline.py' for n in NETS})


def test_every_new_config_is_in_the_row_checks():
    made = sorted(osp.basename(p) for p in os.listdir(CFG) if p.startswith(('inception_v3_', 'mobilenet_',
                                                                            'fashion_mobilenet_')))
    assert made == NEW_CONFIGS and len(made) == 20


@pytest.mark.parametrize('child,parent,changed', ROWS, ids=[f'{r[0]}-vs-{r[1]}' for r in ROWS])
def test_each_config_changes_one_trick_of_its_parent(child, parent, changed):
    a, b = dict(trick_table(cfg(child), 8)), dict(trick_table(cfg(parent), 8))
    assert {k for k in a if a[k] != b[k]} == changed


def run_pretrain_dry(config: str, capsys) -> dict:
    spec = importlib.util.spec_from_file_location('pretrain_tool', osp.join(REPO, 'tools', 'pretrain.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main([osp.join(CFG, config), '--dry-run'])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines()[1:]:
        key, _, value = line.partition('  ')
        rows[key.strip()] = value.strip()
    return rows


@pytest.mark.parametrize('name', NEW_CONFIGS)
def test_new_config_builds_and_dry_runs(name, capsys):
    c = cfg(name)
    rows = run_pretrain_dry(name, capsys)
    net = 'BagMobileNetV1' if 'mobilenet' in name else 'BagInceptionV3'
    assert rows['backbone'].startswith(net) and rows['zero gamma'] == 'n/a for this backbone'
    assert rows['init'] == 'xavier'
    if name.startswith('inception'):
        assert rows['input'] == 'train crop 299, val resize 342 centre crop 299'
        assert [t['size'] for t in c.test_dataloader.dataset.pipeline[:2]] == [342, 299]
    elif name.startswith('mobilenet'):
        assert rows['input'] == 'train crop 224, val resize 256 centre crop 224'
    else:
        assert rows['input'] == 'train crop 32, val resize 32 centre crop 32' and c.model.backbone.width == 0.25
    model_cfg = dict(c.model, distill=None)  # the teacher's checkpoint comes from a pretraining run
    model = MODELS.build(model_cfg)
    assert type(model.backbone).__name__ == net and model.num_classes == (10 if 'fashion' in name else 1000)
    assert model.head.fc.in_features == (256 if 'fashion' in name else 1024 if 'mobilenet' in name else 2048)
    if 'inception' in name:
        assert isinstance(model.head.dropout, torch.nn.Dropout) and model.head.dropout.p == 0.5
    else:
        assert isinstance(model.head.dropout, torch.nn.Identity)
    if 'kd' in name or 'tricks' in name:
        assert c.model.distill.teacher_config.endswith('fashion_teacher.py' if 'fashion' in name
                                                       else 'resnet152d_teacher.py')


def test_inception_distillation_teacher_sees_the_299px_batch(tmp_path):
    """The ResNet teacher of inception_v3_cosine_ls_kd.py is fed the student's own 299 px (mixed) batch."""
    teacher_cfg = tmp_path / 'teacher.py'
    teacher_cfg.write_text(f"_base_ = '{CFG}/resnet152d_teacher.py'\n"
                           "model = dict(backbone=dict(depth=18, base_channels=8, stem_channels=16))\n")
    teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
    torch.save({'state_dict': teacher.state_dict()}, tmp_path / 't.pth')
    c = cfg('inception_v3_tricks.py')
    model_cfg = dict(c.model, distill=dict(c.model.distill, teacher_config=str(teacher_cfg),
                                           teacher_checkpoint=str(tmp_path / 't.pth')))
    student = MODELS.build(model_cfg).train()
    seen = []
    student.teacher.backbone.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    student.backbone.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    x, y = torch.randn(2, 3, 299, 299), torch.tensor([3, 997])
    torch.manual_seed(0)
    loss = student.loss(x, y)['loss']
    loss.backward()
    assert len(seen) == 2 and seen[0].shape == seen[1].shape == (2, 3, 299, 299)
    # the batch the teacher saw is the mixed one the student trained on (one lambda, one permutation)
    torch.manual_seed(0)
    lam, perm = sample_mixup(2, 0.2)
    xm, _ = mixup(x, smooth_targets(y, 1000, 0.1), lam, perm)
    assert 0 < lam < 1 and torch.equal(seen[0], xm) and torch.equal(seen[1], xm)
    assert torch.isfinite(loss) and loss.item() > 0
    assert all(p.grad is None for p in student.teacher.parameters())


# ---------------------------------------------------------------- the grid's MobileNet rows
def test_grid_mobilenet_rows_are_classification_only_with_the_papers_column():
    from engine.results import results_record
    from experiments.grid import MOBILENET_ROWS, ROWS, markdown_table, summarize
    assert MOBILENET_ROWS == ['mobilenet_efficient', 'mobilenet_cosine', 'mobilenet_smoothing', 'mobilenet_distill',
                              'mobilenet_mixup', 'mobilenet_distill_mixup']
    assert [ROWS[n].paper[0] for n in MOBILENET_ROWS] == [71.90, 72.83, 72.93, 71.97, 73.28, 72.51]
    assert all(not ROWS[n].transfer and osp.isfile(osp.join(REPO, ROWS[n].cls_config)) for n in MOBILENET_ROWS)
    assert [ROWS[n].teacher for n in MOBILENET_ROWS] == [False, False, False, True, False, True]
    assert [ROWS[n].parent for n in MOBILENET_ROWS] == [None, 'mobilenet_efficient', 'mobilenet_cosine',
                                                        'mobilenet_smoothing', 'mobilenet_smoothing', 'mobilenet_mixup']
    where = dict(split='test', num_images=1)
    records = [results_record('cls', dict(top1=t), row='mobilenet_cosine', seed=i, **where)
               for i, t in enumerate((70.0, 72.0, 74.0))]
    records += [results_record('cls', dict(top1=90.0), row='d_cosine', seed=0, **where),
                results_record('det', dict(mAP=50.0), row='d_cosine', seed=0, **where),
                results_record('seg', dict(pixAcc=80.0, mIoU=40.0), row='d_cosine', seed=0, **where)]
    s = summarize(records)
    assert s['mobilenet_cosine']['top1'] == (72.0, pytest.approx(2.0), 3) and s['mobilenet_cosine']['mAP'] is None
    table = markdown_table(s)
    assert '| MobileNet + cosine | 72.00 ± 2.00 | - | - | - | - | 72.83 | - | - | - |' in table
    assert '| + cosine | 90.00 | 50.00 | 80.00 | 40.00 | - | 77.91 |' in table
    assert 'MobileNet (1.0), ResNet-50' in table


@pytest.mark.skipif(not osp.isdir('/usr/share/datasets/fashion-mnist'), reason='dataset-fashion-mnist not installed')
def test_grid_runs_a_mobilenet_row_classification_only(tmp_path):
    data, work, out = tmp_path / 'data', tmp_path / 'work', tmp_path / 'out'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    subprocess.run([sys.executable, 'tools/prepare_fashion.py', '--out', str(data), '--limit', '300',
                    '--scenes-train', '4', '--scenes-val', '2'], check=True, cwd=REPO, capture_output=True, env=env)
    cmd = [sys.executable, 'tools/transfer_grid.py', '--rows', 'mobilenet_efficient', '--work-dir', str(work),
           '--out', str(out), '--cls-options', 'train_dataloader.batch_size=32',
           'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
           'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
           'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
           'train_cfg.max_epochs=1',
           *[f'{s}_dataloader.dataset.data_root={data}/imagenet' for s in ('train', 'val', 'test')]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = work / 'mobilenet_efficient' / 'seed0'
    assert sorted(os.listdir(cell)) == ['cls']  # no detection, no segmentation cell
    from engine.results import read_results
    res = read_results(cell / 'cls' / 'result.json', task='cls')
    top1, prov = res['metrics']['top1'], res['provenance']
    assert 0 <= top1 <= 100 and prov['backbone_cfg']['type'] == 'BagMobileNetV1'
    exported = torch.load(prov['backbone_file'], weights_only=True)
    assert set(exported) == set(BagMobileNetV1(width=0.25).state_dict())
    table = (out / 'table.md').read_text()
    assert f'| MobileNet efficient | {top1:.2f} | - | - | - | - | 71.90 |' in table
