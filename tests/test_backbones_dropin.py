"""Stock mmdet / mmseg configs with only the backbone type (and variant) swapped to BagResNet give the
stock model's outputs, from the same pretrained file, resolved by name in a local cache (no network).

The cache is this test's: ``TORCH_HOME`` and ``MMENGINE_HOME`` point into a temporary directory, which
holds a randomly initialised torchvision ResNet-50 and mmseg ResNetV1c-50 under the file names mmengine
looks up for ``torchvision://resnet50`` and ``open-mmlab://resnet50_v1c``.
"""
from __future__ import annotations

import copy
import hashlib
import http.server
import logging
import os
import threading
from contextlib import contextmanager
from functools import partial

import pytest
import torch
import torchvision
from mmengine.hub import get_config
from mmengine.registry import DefaultScope
from torch import nn

import backbones  # noqa: F401  registers bagtricks.BagResNet
from backbones import BagResNet
from backbones.checkpoint import convert_backbone_state
from backbones.pretrained import cache_path, resolve_checkpoint
from user_errors import CheckpointError

REAL_DOWNLOAD = torch.hub.download_url_to_file
TV_FILE = 'resnet50-0676ba61.pth'        # mmengine's torchvision_0.12.json entry for 'resnet50'
V1C_FILE = 'resnet50_v1c-2cccc1ad.pth'   # mmengine's openmmlab.json entry for 'resnet50_v1c'


def randomize_norm_stats(model: nn.Module, seed: int) -> None:
    """BN statistics and affine values a fresh model cannot have, so outputs depend on every tensor."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """A torch hub + mmengine cache with the two ImageNet files the stock configs name."""
    root = tmp_path_factory.mktemp('cache')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('TORCH_HOME', str(root / 'torch'))
        mp.setenv('MMENGINE_HOME', str(root / 'mmengine'))
        mp.setattr(torch.hub, '_hub_dir', None)  # get_dir() follows TORCH_HOME

        def no_download(url, dst, *args, **kwargs):  # neither loader may reach for the network
            raise AssertionError(f'download attempted: {url} -> {dst}')
        mp.setattr(torch.hub, 'download_url_to_file', no_download)
        ckpt_dir = root / 'torch' / 'hub' / 'checkpoints'
        ckpt_dir.mkdir(parents=True)
        # the names as mmengine's own tables give them, looked up independently of backbones.pretrained
        from mmengine.runner.checkpoint import get_external_models, get_torchvision_models
        assert get_torchvision_models()['resnet50'].endswith('/' + TV_FILE)
        assert get_external_models()['resnet50_v1c'].endswith('/' + V1C_FILE)
        torch.manual_seed(0)
        tv = torchvision.models.resnet50()
        randomize_norm_stats(tv, seed=1)
        torch.save(tv.state_dict(), ckpt_dir / TV_FILE)
        from mmseg.models.backbones import ResNetV1c
        torch.manual_seed(2)
        v1c = ResNetV1c(depth=50)
        randomize_norm_stats(v1c, seed=3)
        torch.save({'state_dict': v1c.state_dict()}, ckpt_dir / V1C_FILE)  # the real file's layout
        yield dict(root=root, dir=ckpt_dir, tv=tv.state_dict(), v1c=v1c.state_dict())


@contextmanager
def mm_log():
    """The messages of mmengine's current logger (it does not propagate to pytest's caplog)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    lines = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


def _build(registry, scope: str, model_cfg):
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(copy.deepcopy(model_cfg))
        model.init_weights()
    return model


def _flat(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flat(out[k])]
    return [t for o in out for t in _flat(o)]


def _copy_heads(stock, ours):
    """The necks and heads (and a plugin's random init) are random in both: give ours the stock values.
    Every backbone tensor of ours must come from the pretrained file (or be a DCN offset / plugin)."""
    extension = {f'backbone.{k}' for k in ours.backbone.extension_keys()}
    heads = {k: v for k, v in stock.state_dict().items() if not k.startswith('backbone.')}
    heads.update({k: stock.state_dict()[k] for k in extension})  # same key names as mmdet's
    missing, unexpected = ours.load_state_dict(heads, strict=False)
    assert not unexpected
    assert all(k.startswith('backbone.') for k in missing)


def _assert_backbones_equal(stock, ours):
    converted = convert_backbone_state(stock.backbone.state_dict(), ours.backbone.state_dict())
    mine = ours.backbone.state_dict()
    assert set(converted) == set(mine)
    extension = set(ours.backbone.extension_keys())
    for k, v in mine.items():
        if k not in extension:  # from the pretrained file
            assert torch.equal(converted[k], v), k
        elif 'conv_offset' in k:  # DCN offsets start at zero in both
            assert not converted[k].any() and not v.any(), k


DET_CONFIGS = [
    'faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'retinanet/retinanet_r50_fpn_1x_coco.py',
    'mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py',     # dcn + stage_with_dcn
    'gcnet/mask-rcnn_r50-gcb-r4-c3-c5_fpn_1x_coco.py',    # ContextBlock plugins
]


@pytest.mark.parametrize('config', DET_CONFIGS)
def test_stock_mmdet_config_with_only_the_type_swapped(config, hub):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = get_config(f'mmdet::{config}')
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.init_cfg.checkpoint == 'torchvision://resnet50'
    ours_cfg = copy.deepcopy(cfg.model)
    ours_cfg.backbone.type = 'bagtricks.BagResNet'  # and whose defaults: style='pytorch' means variant B
    ours_cfg.backbone.defaults = 'mmdet'
    torch.manual_seed(0)
    stock = _build(MODELS, 'mmdet', cfg.model)
    with mm_log() as log:
        ours = _build(MODELS, 'mmdet', ours_cfg)
    bb = ours.backbone
    assert isinstance(bb, BagResNet) and bb.variant == 'B' and bb.norm_eval and bb.frozen_stages == 1
    assert f'tensors from torchvision://resnet50 ({hub["dir"] / TV_FILE})' in '\n'.join(log)
    _assert_backbones_equal(stock, ours)
    _copy_heads(stock, ours)

    h, w = 96, 128
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
    samples = [DetDataSample(metainfo=meta)]
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(5))
    stock.eval(), ours.eval()
    with torch.no_grad():
        ref, got = _flat(stock._forward(x, samples)), _flat(ours._forward(x, samples))
    assert len(ref) == len(got) > 0
    diff = max((a - b).abs().max().item() for a, b in zip(ref, got))
    assert diff < 1e-5, diff


SEG_CONFIGS = [
    'fcn/fcn_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'deeplabv3/deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.py',
]


@pytest.mark.parametrize('config', SEG_CONFIGS)
def test_stock_mmseg_config_with_type_and_variant_swapped(config, hub):
    """mmseg's configs name the weights at model level (``pretrained='open-mmlab://resnet50_v1c'``);
    EncoderDecoder copies it into the backbone's ``pretrained``."""
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = get_config(f'mmseg::{config}')
    assert cfg.model.pretrained == 'open-mmlab://resnet50_v1c' and cfg.model.backbone.type == 'ResNetV1c'
    ours_cfg = copy.deepcopy(cfg.model)
    ours_cfg.backbone.type = 'bagtricks.BagResNet'
    ours_cfg.backbone.defaults = 'mmseg'
    ours_cfg.backbone.variant = 'C'  # ResNetV1c
    torch.manual_seed(0)
    stock = _build(MODELS, 'mmseg', cfg.model)
    with mm_log() as log:
        ours = _build(MODELS, 'mmseg', ours_cfg)
    bb = ours.backbone
    assert bb.variant == 'C' and not bb.norm_eval  # mmseg's default norm_eval=False
    assert f'loaded {len(bb.state_dict())}/{len(bb.state_dict())} backbone tensors from ' \
           f'open-mmlab://resnet50_v1c ({hub["dir"] / V1C_FILE})' in '\n'.join(log)
    _assert_backbones_equal(stock, ours)
    _copy_heads(stock, ours)
    # the deep stem came from the file (mmengine's lenient loader would have left it random)
    assert torch.equal(bb.conv1[0].weight, hub['v1c']['stem.0.weight'])

    x = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(7))
    stock.eval(), ours.eval()
    with torch.no_grad():
        ref, got = stock._forward(x), ours._forward(x)
    assert ref.shape == got.shape == (1, 19, 12, 16)
    diff = (ref - got).abs().max().item()
    assert diff < 1e-5, diff


def test_faster_rcnn_trains_exactly_as_the_stock_model(hub):
    """Train mode too: same losses and same backbone gradients (frozen stem + stage 1, BN in eval)."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData
    register_all_modules(init_default_scope=False)
    cfg = get_config('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    ours_cfg = copy.deepcopy(cfg.model)
    ours_cfg.backbone.type = 'bagtricks.BagResNet'
    ours_cfg.backbone.defaults = 'mmdet'
    stock, ours = _build(MODELS, 'mmdet', cfg.model), _build(MODELS, 'mmdet', ours_cfg)
    _copy_heads(stock, ours)
    h, w = 96, 128
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
    sample = DetDataSample(metainfo=meta)
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 12., 60., 80.], [50., 20., 120., 90.]]),
                                       labels=torch.tensor([3, 7]))
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(9))
    losses = []
    for model in (stock, ours):
        model.train()
        torch.manual_seed(11)  # the RPN / RoI samplers draw the same samples
        loss = model.loss(x, [sample])
        total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(v) for k, v in loss.items() if 'loss' in k)
        total.backward()
        losses.append({k: float(sum(v) if isinstance(v, list) else v) for k, v in loss.items()})
    assert losses[0].keys() == losses[1].keys()
    for k in losses[0]:
        assert abs(losses[0][k] - losses[1][k]) < 1e-5, (k, losses[0][k], losses[1][k])
    grads = convert_backbone_state({k: p.grad for k, p in stock.backbone.named_parameters() if p.grad is not None},
                                   ours.backbone.state_dict())
    mine = {k: p.grad for k, p in ours.backbone.named_parameters() if p.grad is not None}
    assert set(grads) == set(mine) and 'layer2.0.conv1.weight' in mine and 'layer1.0.conv1.weight' not in mine
    # float rounding of the two backward passes only: relative to each gradient's own scale
    rel = max(((grads[k] - mine[k]).abs().max() / grads[k].abs().max().clamp_min(1e-12)).item() for k in mine)
    assert rel < 1e-4, rel


# -- resolving names ---------------------------------------------------------------------------------

def test_names_resolve_to_mmengine_cache_files(hub):
    assert resolve_checkpoint('torchvision://resnet50') == str(hub['dir'] / TV_FILE)
    assert resolve_checkpoint('modelzoo://resnet50') == str(hub['dir'] / TV_FILE)
    assert resolve_checkpoint('open-mmlab://resnet50_v1c') == str(hub['dir'] / V1C_FILE)
    assert resolve_checkpoint('openmmlab://resnet50_v1c') == str(hub['dir'] / V1C_FILE)
    url = 'https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth'
    assert resolve_checkpoint(url) == str(hub['dir'] / V1C_FILE)
    assert resolve_checkpoint('relative/file.pth') == 'relative/file.pth'  # a path stays a path
    with pytest.raises(CheckpointError, match=r"torchvision://resnet05: no such name .*closest: torchvision://resnet50"):
        resolve_checkpoint('torchvision://resnet05')
    with pytest.raises(CheckpointError, match=r'ftp://x/y\.pth: unsupported checkpoint scheme'):
        resolve_checkpoint('ftp://x/y.pth')


def test_uncached_url_is_one_error_naming_the_cache_path_and_downloads_nothing(hub, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError('a download was attempted')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    monkeypatch.setattr('urllib.request.urlopen', no_network)
    monkeypatch.delenv('BAGTRICKS_DOWNLOAD', raising=False)
    expected = hub['dir'] / 'resnet101-63fe2227.pth'
    assert cache_path('https://download.pytorch.org/models/resnet101-63fe2227.pth') == str(expected)
    model = BagResNet(depth=101, variant='B', init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet101'))
    with pytest.raises(CheckpointError) as e:
        model.init_weights()
    msg = str(e.value)
    assert 'torchvision://resnet101 (https://download.pytorch.org/models/resnet101-63fe2227.pth) is not in the ' \
           f'local cache: put the file at {expected}' in msg
    assert '\n' not in msg and not expected.exists()


def test_opt_in_download_fills_the_cache_and_checks_the_hash(hub, tmp_path, monkeypatch):
    """BAGTRICKS_DOWNLOAD=1 fetches the file into the cache (served here by a local HTTP server)."""
    served = tmp_path / 'served'
    served.mkdir()
    state = BagResNet(depth=18, variant='D', base_channels=8, stem_channels=16).state_dict()
    blob = served / 'tmp.pth'
    torch.save(state, blob)
    digest = hashlib.sha256(blob.read_bytes()).hexdigest()
    good, bad = f'r18d-{digest[:8]}.pth', 'r18d-00000000.pth'
    os.rename(blob, served / good)
    (served / bad).write_bytes((served / good).read_bytes())
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f'http://127.0.0.1:{server.server_address[1]}'
        monkeypatch.setenv('BAGTRICKS_DOWNLOAD', '1')
        monkeypatch.setattr(torch.hub, 'download_url_to_file', REAL_DOWNLOAD)  # to 127.0.0.1 only
        model = BagResNet(depth=18, variant='D', base_channels=8, stem_channels=16,
                          init_cfg=dict(type='Pretrained', checkpoint=f'{base}/{good}'))
        model.init_weights()
        assert (hub['dir'] / good).is_file()
        for k, v in state.items():
            assert torch.equal(model.state_dict()[k], v), k
        with pytest.raises(CheckpointError, match=rf'could not download {base}/{bad} to .*{bad}'):
            resolve_checkpoint(f'{base}/{bad}')
        assert not (hub['dir'] / bad).exists()  # no half or wrong file left in the cache
    finally:
        server.shutdown()
        server.server_close()


# -- init_cfg forms ----------------------------------------------------------------------------------

def test_list_init_cfg_loads_strictly_after_the_other_initialisers(hub):
    """A Pretrained entry inside a list goes through the strict converter too: the C stem is loaded
    from the mmseg layout, and a file that does not fit is an error, not a warning."""
    cfg = [dict(type='Constant', val=0.5, layer='Conv2d'), dict(type='Pretrained', checkpoint='open-mmlab://resnet50_v1c')]
    model = BagResNet(depth=50, variant='C', init_cfg=cfg)
    model.init_weights()
    assert torch.equal(model.conv1[0].weight, hub['v1c']['stem.0.weight'])
    assert torch.equal(model.layer4[2].conv3.weight, hub['v1c']['layer4.2.conv3.weight'])
    assert model.init_cfg == cfg  # the config is kept as given
    # without a Pretrained entry, the list runs through mmengine's initialisers
    model = BagResNet(depth=18, variant='B', base_channels=8, init_cfg=[dict(type='Constant', val=0.5, layer='Conv2d')])
    model.init_weights()
    assert torch.all(model.layer1[0].conv1.weight == 0.5)
    # the ImageNet ResNet-50 does not fit ResNet-50-D (deep stem, pooled downsample): one error
    model = BagResNet(depth=50, variant='D', init_cfg=[dict(type='Kaiming', layer='Conv2d'),
                                                       dict(type='Pretrained', checkpoint='torchvision://resnet50')])
    with pytest.raises(CheckpointError, match=r"torchvision://resnet50 \(.*\) does not fit BagResNet\(depth=50, "
                                              r"variant='D'\): \d+ missing keys"):
        model.init_weights()


def test_pretrained_prefix_and_keyword(hub, tmp_path):
    """``prefix`` picks a sub-model out of a whole checkpoint; ``pretrained=`` is short for init_cfg."""
    whole = {f'backbone.{k}': v for k, v in hub['tv'].items()}
    whole['neck.lateral.weight'] = torch.zeros(3)
    path = tmp_path / 'detector.pth'
    torch.save({'meta': {}, 'state_dict': whole}, path)
    model = BagResNet(depth=50, variant='B', init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone'))
    model.init_weights()
    assert torch.equal(model.layer3[5].bn2.running_var, hub['tv']['layer3.5.bn2.running_var'])
    with pytest.raises(CheckpointError, match=r"detector\.pth: no key starts with prefix 'student\.'"):
        BagResNet(depth=50, variant='B', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                                       prefix='student.')).init_weights()
    model = BagResNet(depth=50, variant='B', pretrained='torchvision://resnet50')
    assert model.init_cfg == dict(type='Pretrained', checkpoint='torchvision://resnet50')
    model.init_weights()
    assert torch.equal(model.conv1.weight, hub['tv']['conv1.weight'])
    with pytest.raises(TypeError, match='pretrained must be a str'):
        BagResNet(depth=18, pretrained=0)
    with pytest.raises(ValueError, match='both given'):
        BagResNet(depth=18, pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth'))


def test_dcn_backbone_starts_from_the_plain_resnet_file(hub):
    """mmdet's DCN configs start from torchvision's ResNet-50: the offsets are not in the file and start
    at zero, so the deformable ResNet then computes exactly what the plain one does."""
    dcn = dict(type='DCN', deform_groups=1, fallback_on_stride=False)
    model = BagResNet(depth=50, variant='B', dcn=dcn, stage_with_dcn=(False, True, True, True),
                      init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
    with mm_log() as log:
        model.init_weights()
    n_offsets = len(model.extension_keys())
    assert n_offsets == 2 * (4 + 6 + 3)  # weight + bias of one offset conv per block of stages 2-4
    assert f'{n_offsets} DCN-offset/plugin tensors keep their initialisation' in '\n'.join(log)
    plain = BagResNet(depth=50, variant='B', pretrained='torchvision://resnet50')
    plain.init_weights()
    model.eval(), plain.eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        # mmcv's deformable im2col sums in another order than a conv: equal up to float rounding
        rel = max(((a - b).abs().max() / b.abs().max()).item() for a, b in zip(model(x), plain(x)))
    assert rel < 1e-5, rel


def test_readme_example_configs_build_with_the_stock_weights(hub, tmp_path):
    """The two configs of README's "Use it in your own mmdet / mmseg config", as written there."""
    from mmengine.config import Config
    readme = open(os.path.join(os.path.dirname(__file__), '..', 'README.md')).read()
    block = readme.split('#### Use it in your own mmdet / mmseg config', 1)[1].split('```python\n', 1)[1]
    block = block.split('```', 1)[0]
    det_text, seg_text = block.split('# my_pspnet.py')
    built = {}
    for name, text, scope in (('det', det_text, 'mmdet'), ('seg', seg_text, 'mmseg')):
        path = tmp_path / f'{name}.py'
        path.write_text(text)
        cfg = Config.fromfile(str(path))
        registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
        __import__(f'{scope}.utils', fromlist=['register_all_modules']).register_all_modules(init_default_scope=False)
        with mm_log() as log:
            built[name] = _build(registry, scope, cfg.model).backbone
        assert any('backbone tensors from' in line for line in log)
    assert (built['det'].variant, built['det'].norm_eval) == ('B', True)
    assert torch.equal(built['det'].layer1[0].conv1.weight, hub['tv']['layer1.0.conv1.weight'])
    assert built['seg'].variant == 'C' and built['seg'].layer4[0].conv2.dilation == (2, 2)  # D8, contracted 4 -> 2
    assert torch.equal(built['seg'].conv1[3].weight, hub['v1c']['stem.3.weight'])
