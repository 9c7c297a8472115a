"""timm:// names and safetensors files: the paper's ResNet-50-D as timm publishes it
(``timm/resnet50d.gluon_in1k``), read from huggingface_hub's cache layout without any pickle, is the
BagResNet-D timm's own model is, stage by stage; our exports and conversions can be written as
safetensors and load back through the same path; broken safetensors files and a missing model are one
error each.

The cache is made here from timm's own ``resnet50d`` (random weights, BatchNorm statistics and affine
parameters randomised too so that no block is an identity), saved by ``timm.models.save_for_hf``
(``model.safetensors`` + ``config.json``) into ``models--timm--resnet50d.gluon_in1k/snapshots/<rev>/``
with ``refs/main`` naming ``<rev>``, as ``hf download`` leaves it. Nothing is downloaded.

Tolerance: the plain BagResNet(depth=50, variant='D') runs the same float32 operations as timm on the
CPU and its stage outputs are compared with ``torch.equal`` (max abs diff 0, measured 0). The det
config's backbone runs channels_last convolutions (other CPU kernels, another summation order): its max
abs diff must be <= 1e-5 x the stage's largest magnitude (measured on a 2-core x86 CPU: at most 1.9e-6 x,
i.e. 1e-5 absolute at stage 1 (magnitude ~7) up to 4.8e-3 at stage 4 (magnitude ~2.5e3)).
"""
import json
import math
import os
import os.path as osp
import struct
import subprocess
import sys

import pytest
import torch
from hypothesis import given, strategies as st

timm = pytest.importorskip('timm')

from backbones import BagResNet  # noqa: E402
from safe_read import load_safetensors_file, load_weights_file  # noqa: E402
from user_errors import CheckpointError, ConfigError  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NAME = 'timm://resnet50d.gluon_in1k'
REPO_ID = 'timm/resnet50d.gluon_in1k'
REV = '0123456789abcdef0123456789abcdef01234567'


def _randomise_norms(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """(cache dir, timm's model in eval mode): a Hugging Face cache holding timm's resnet50d as
    timm/resnet50d.gluon_in1k."""
    torch.manual_seed(0)
    model = timm.create_model('resnet50d', pretrained=False)
    _randomise_norms(model)
    model.eval()
    cache = tmp_path_factory.mktemp('hf') / 'hub'
    repo = cache / ('models--' + REPO_ID.replace('/', '--'))
    snapshot = repo / 'snapshots' / REV
    snapshot.mkdir(parents=True)
    timm.models.save_for_hf(model, str(snapshot), safe_serialization=True)
    assert (snapshot / 'model.safetensors').is_file() and (snapshot / 'config.json').is_file()
    (repo / 'refs').mkdir()
    (repo / 'refs' / 'main').write_text(REV)
    return str(cache), model


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.delenv('BAGTRICKS_DOWNLOAD', raising=False)
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    return monkeypatch


def _timm_stages(model, x):
    with torch.no_grad():
        return model.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)


def _bag_stages(backbone, x):
    backbone.eval()
    with torch.no_grad():
        return [o.contiguous() for o in backbone(x)]


@pytest.mark.parametrize('size', [64, 75])  # 75: odd sizes exercise the D downsample's ceil-mode pooling
def test_timm_name_gives_timm_stage_outputs(hub, offline, size):
    cache, model = hub
    offline.setenv('HF_HUB_CACHE', cache)
    backbone = BagResNet(depth=50, variant='D', init_cfg=dict(type='Pretrained', checkpoint=NAME))
    backbone.init_weights()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    ours, theirs = _bag_stages(backbone, x), _timm_stages(model, x)
    assert len(ours) == len(theirs) == 4
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, i
        assert torch.equal(a, b), (i, (a - b).abs().max().item())  # tolerance: 0
    assert theirs[-1].abs().max() > 0  # not a trivially zero network


def test_pretrained_flag_with_timm_name_loads_into_the_det_backbone(hub, offline):
    """--pretrained timm://... on the paper's Table 7 config: the detector's backbone (mmdet defaults,
    channels_last) computes timm's stage outputs."""
    from backbones.pretrained import apply_pretrained
    from backbones.registry import MODELS
    from engine.cli import read_config
    cache, model = hub
    offline.setenv('HF_HUB_CACHE', cache)
    cfg = read_config(osp.join(REPO, 'configs', 'det', 'faster-rcnn_r50d-efficient_fpn_voc0712.py'))
    apply_pretrained(cfg, NAME)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=NAME)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    x = torch.randn(1, 3, 96, 80, generator=torch.Generator().manual_seed(1))
    for i, (a, b) in enumerate(zip(_bag_stages(backbone, x), _timm_stages(model, x))):
        scale = b.abs().max().item()
        assert (a - b).abs().max().item() <= 1e-5 * max(scale, 1.0), (i, (a - b).abs().max().item(), scale)
    with pytest.raises(CheckpointError, match=r'timm://<model>\.<tag>'):
        apply_pretrained(cfg, 'timm://resnet50d')  # no tag: refused when the flag is read


def _tool(*args, env=None):
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def _one_error(proc) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert proc.returncode == 1 and len(errors) == 1 and 'Traceback' not in proc.stderr, \
        (proc.returncode, proc.stderr[-3000:])
    return errors[0]


def _offline_env(cache):
    env = {k: v for k, v in os.environ.items() if k != 'BAGTRICKS_DOWNLOAD'}
    return {**env, 'HF_HUB_CACHE': str(cache), 'HF_HUB_OFFLINE': '1'}


def test_missing_timm_model_offline_is_one_error_line(tmp_path):
    empty = tmp_path / 'hub'
    empty.mkdir()
    out = tmp_path / 'r50d.safetensors'
    proc = subprocess.run([sys.executable, 'tools/convert_weights.py', NAME, str(out), '--format', 'safetensors'],
                          cwd=REPO, capture_output=True, text=True, env=_offline_env(empty))
    line = _one_error(proc)
    assert str(empty / 'models--timm--resnet50d.gluon_in1k') in line, line
    assert f'hf download {REPO_ID}' in line and 'BAGTRICKS_DOWNLOAD=1' in line, line
    assert not out.exists() and os.listdir(empty) == []  # nothing written, nothing fetched


def test_convert_weights_from_timm_name_to_safetensors_and_back(hub, offline, tmp_path):
    cache, model = hub
    offline.setenv('HF_HUB_CACHE', cache)
    out = tmp_path / 'r50d_gluon.safetensors'
    proc = subprocess.run([sys.executable, 'tools/convert_weights.py', NAME, str(out), '--format', 'safetensors'],
                          cwd=REPO, capture_output=True, text=True, env=_offline_env(cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out, 'rb') as f:  # a safetensors file (header length, then JSON), not a zip/pickle
        assert f.read(9)[8:9] == b'{'
    state = load_safetensors_file(str(out))
    assert 'conv1.0.weight' in state and not any(k.startswith('fc.') for k in state)
    backbone = BagResNet(depth=50, variant='D', init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    backbone.init_weights()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    for a, b in zip(_bag_stages(backbone, x), _timm_stages(model, x)):
        assert torch.equal(a, b)
    # the format and the name must agree; refused before anything is read
    proc = _tool('tools/convert_weights.py', NAME, tmp_path / 'x.pth', '--format', 'safetensors',
                 env=_offline_env(cache))
    assert '--format pth' in _one_error(proc) and not (tmp_path / 'x.pth').exists()


def test_export_backbone_safetensors_round_trip(tmp_path):
    """A training checkpoint as mmengine writes it (state_dict with backbone./head. keys, meta with the
    config text) -> export_backbone --format safetensors -> init_cfg loads it back, tensor for tensor."""
    torch.manual_seed(3)
    trained = BagResNet(depth=18, variant='D')
    _randomise_norms(trained, seed=3)
    state = {f'backbone.{k}': v for k, v in trained.state_dict().items()}
    state.update({'head.fc.weight': torch.randn(10, 512), 'head.fc.bias': torch.zeros(10)})
    cfg_text = "model = dict(type='BagClassifier', backbone=dict(type='BagResNet', depth=18, variant='D'))\n"
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=state, meta=dict(cfg=cfg_text, epoch=1, iter=10)), ckpt)
    out = tmp_path / 'backbone.safetensors'
    proc = _tool('tools/export_backbone.py', ckpt, out, '--format', 'safetensors')
    assert proc.returncode == 0, proc.stderr[-3000:]
    exported = load_weights_file(str(out))
    assert set(exported) == set(trained.state_dict())
    loaded = BagResNet(depth=18, variant='D', init_cfg=dict(type='Pretrained', checkpoint=str(out)))
    loaded.init_weights()
    for key, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    # a .safetensors name without --format safetensors would be a pickle under a safetensors name: refused
    proc = _tool('tools/export_backbone.py', ckpt, tmp_path / 'other.safetensors')
    assert '--format safetensors' in _one_error(proc)


def test_format_flag_and_name_checked_in_process(tmp_path):
    from backbones.checkpoint import check_weights_destination
    with pytest.raises(ConfigError, match='--format safetensors'):
        check_weights_destination(str(tmp_path / 'a.safetensors'), None, 'pth')
    with pytest.raises(ConfigError, match='--format pth'):
        check_weights_destination(str(tmp_path / 'a.pth'), None, 'safetensors')
    check_weights_destination(str(tmp_path / 'a.st'), None, 'safetensors')  # other names: the flag decides


# -- broken safetensors files: one CheckpointError each ------------------------------------------------------
def _small_state():
    torch.manual_seed(4)
    return {k: v.clone() for k, v in BagResNet(depth=18, variant='D').state_dict().items()}


def _save(path, state):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


def _header_file(path, header: bytes, length: int | None = None, tail: bytes = b''):
    path.write_bytes(struct.pack('<Q', len(header) if length is None else length) + header + tail)
    return str(path)


def _load_into_backbone(path):
    BagResNet(depth=18, variant='D', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


def test_safetensors_with_a_nan_weight_is_refused(tmp_path):
    state = _small_state()
    state['layer1.0.conv1.weight'][0, 0, 0, 0] = float('nan')
    path = _save(tmp_path / 'nan.safetensors', state)
    with pytest.raises(CheckpointError, match=r'layer1\.0\.conv1\.weight holds 1 NaN') as e:
        _load_into_backbone(path)
    assert path in str(e.value) and '\n' not in str(e.value)


def test_safetensors_with_an_int_weight_is_refused(tmp_path):
    state = _small_state()
    state['conv1.0.weight'] = state['conv1.0.weight'].to(torch.int32)
    path = _save(tmp_path / 'int.safetensors', state)
    with pytest.raises(CheckpointError, match=r'conv1\.0\.weight is int32 in the file.*floating-point'):
        _load_into_backbone(path)


@pytest.mark.parametrize('case', ['huge_header', 'garbage_header', 'header_past_end', 'complex_dtype',
                                  'offsets_overlap', 'truncated_data', 'not_an_object'])
def test_broken_safetensors_file_is_one_checkpoint_error(tmp_path, case):
    p = tmp_path / f'{case}.safetensors'
    one = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    path = {
        'huge_header': lambda: _header_file(p, b'{}', length=2 ** 62),
        'garbage_header': lambda: _header_file(p, b'\xff\xfe garbage \x00 not json at all'),
        'header_past_end': lambda: _header_file(p, b'{}', length=1000),
        'complex_dtype': lambda: _header_file(
            p, b'{"w":{"dtype":"C64","shape":[2],"data_offsets":[0,16]}}', tail=bytes(16)),
        'offsets_overlap': lambda: _header_file(
            p, b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
               b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', tail=bytes(12)),
        'truncated_data': lambda: _header_file(p, one, tail=bytes(4)),
        'not_an_object': lambda: _header_file(p, b'[1, 2, 3]'),
    }[case]()
    with pytest.raises(CheckpointError, match='not a readable safetensors file') as e:
        load_weights_file(path)
    assert path in str(e.value) and '\n' not in str(e.value)
    with pytest.raises(CheckpointError):  # and through init_cfg, the same error
        _load_into_backbone(path)


def test_safetensors_found_by_magic_whatever_its_name(tmp_path):
    state = _small_state()
    path = _save(tmp_path / 'weights.bin', state)  # no .safetensors extension: the magic decides
    loaded = load_weights_file(path)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)


_DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'C64', 'F8_E4M3', 'U16', 7, None]
_SIZES = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1, 'U8': 1, 'BOOL': 1}


@st.composite
def _safetensors_files(draw):
    """(header, file bytes): mostly well-formed headers with tiled offsets and matching data, each entry
    perhaps damaged in one field, the length field or the data length perhaps off."""
    header, end = {}, 0
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.text(max_size=3) if draw(st.integers(0, 4)) == 0 else
                    st.text(alphabet='ab.0', min_size=1, max_size=4))
        dtype = draw(st.sampled_from(_DTYPES))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        size = math.prod(shape) * _SIZES.get(dtype, 4)
        entry = {'dtype': dtype, 'shape': shape, 'data_offsets': [end, end + size]}
        end += size
        damage = draw(st.sampled_from([None] * 6 + ['shape', 'offsets', 'drop', 'extra', 'not_an_entry']))
        if damage == 'shape':
            entry['shape'] = draw(st.lists(st.integers(-1, 5), max_size=3) | st.just('2x2'))
        elif damage == 'offsets':
            entry['data_offsets'] = draw(st.lists(st.integers(-1, 40), max_size=3))
        elif damage == 'drop':
            entry.pop(draw(st.sampled_from(sorted(entry))))
        elif damage == 'extra':
            entry['more'] = 1
        header[name] = draw(st.integers() | st.text(max_size=4)) if damage == 'not_an_entry' else entry
    if draw(st.booleans()):
        value = st.integers() if draw(st.integers(0, 4)) == 0 else st.text(max_size=3)
        header['__metadata__'] = draw(st.dictionaries(st.text(max_size=3), value, max_size=2))
    blob = json.dumps(header).encode()
    length = len(blob) + draw(st.sampled_from([0] * 6 + [-1, 1, 2 ** 40]))
    data = draw(st.binary(min_size=end, max_size=end)) + draw(st.sampled_from([b''] * 6 + [b'x']))
    if draw(st.integers(0, 7)) == 0:
        data = data[:-1]
    return header, struct.pack('<Q', max(length, 0)) + blob + data


@given(case=_safetensors_files())
def test_any_safetensors_file_is_its_tensors_or_one_error(case):
    """Whatever the header says (dtypes, shapes, offsets, metadata, the length field) and whatever data
    follows: exactly the tensors the header names, of the accepted dtypes and shapes, holding the file's
    bytes; or one CheckpointError naming the file."""
    import tempfile

    import safe_read
    header, content = case
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'h.safetensors')
        with open(path, 'wb') as f:
            f.write(content)
        try:
            state = load_weights_file(path)
        except CheckpointError as e:
            assert path in str(e) and '\n' not in str(e), str(e)
            return
    entries = {k: v for k, v in header.items() if k != '__metadata__'}
    assert set(state) == set(entries)
    start = 8 + struct.unpack('<Q', content[:8])[0]
    for name, tensor in state.items():
        entry = entries[name]
        assert entry['dtype'] in safe_read.SAFETENSORS_DTYPES and list(tensor.shape) == entry['shape']
        begin, end = entry['data_offsets']
        raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        assert raw == content[start + begin:start + end], name
