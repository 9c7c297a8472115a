"""tools/export_onnx.py: onnxruntime gives PyTorch's outputs, for ResNet-D, Inception-V3 and MobileNet, classifier and
--backbone, at batch sizes 1 and 3 through the one dynamic batch axis.

Each network is the shipped config shrunk with --cfg-options (ResNet-18-D at 1/8 width, MobileNet 0.25; Inception-V3
has no width switch, so it runs at its smallest input, 75 px), with random weights whose BatchNorm statistics were
gathered from random batches (so the activations have the scale of a trained network's, not the identity statistics
of a fresh one). Tolerance: max |onnxruntime - torch| <= 1e-4 x max |torch| per output, fp32 on the CPU, for
ResNet-D and MobileNet; 5e-4 for Inception-V3, whose 94 convolutions take fp32 rounding further: there PyTorch's
own fp32 logits differ from its fp64 ones by up to about 1.4e-4 of their scale, and onnxruntime's differ from the
fp64 ones by as much, so the up to 1.7e-4 between the two fp32 runs is rounding, not a different graph. That is
checked for every network: onnxruntime's largest distance from the fp64 outputs is at most 3x PyTorch fp32's, plus
2e-6 of the scale (a few float32 ulps; docs/test_resolution_and_onnx.md gives the measured values)."""
from __future__ import annotations

import copy
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import onnx  # the test extra (pyproject.toml)
import onnxruntime as ort
import pytest
import torch

import classification  # noqa: F401  (registers the classifier)
from backbones.registry import MODELS
from engine.cfg_options import apply_cfg_options
from engine.cli import read_config
from safe_write import OutputError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
NETWORKS = {  # config, --cfg-options (beside model.num_classes), input size, tolerance (of the output's largest |x|)
    'resnet_d': ('resnet50d_tricks.py', {'model.backbone.depth': 18, 'model.backbone.stem_channels': 8,
                                         'model.backbone.base_channels': 8}, 64, 1e-4),
    'inception_v3': ('inception_v3_tricks.py', {}, 75, 5e-4),
    'mobilenet': ('mobilenet_tricks.py', {'model.backbone.width': 0.25}, 64, 1e-4),
}
CLASSES = 7


def _tool():
    spec = importlib.util.spec_from_file_location('_export_onnx', osp.join(REPO, 'tools', 'export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_onnx = _tool()


def _options(name: str) -> dict:
    return {'model.num_classes': CLASSES, **NETWORKS[name][1]}


def _argv_options(name: str) -> list[str]:
    return [f'{k}={v}' for k, v in _options(name).items()]


def _model(name: str, out_indices=None) -> torch.nn.Module:
    cfg = read_config(osp.join(REPO, 'configs', 'cls', NETWORKS[name][0]))
    apply_cfg_options(cfg, _options(name))
    model_cfg = dict(cfg.model, distill=None)
    if out_indices is not None:
        model_cfg['backbone'] = dict(cfg.model.backbone, out_indices=out_indices)
    return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """One checkpoint per network: random weights, BatchNorm statistics from 4 random batches."""
    root = tmp_path_factory.mktemp('onnx_ckpt')
    torch.manual_seed(0)
    paths = {}
    for name, (_, _, size, _) in NETWORKS.items():
        model = _model(name)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # a plain average over the batches below
        model.train()
        with torch.no_grad():
            for _ in range(4):
                model.logits(torch.randn(4, 3, size, size))
        path = str(root / f'{name}.pth')
        torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
        paths[name] = path
    return paths


def _session(path: str):
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


def _compare(name: str, ckpt: str, onnx_path: str, backbone: bool) -> dict:
    """Per output and batch size, each as a fraction of the output's largest |x|: max |onnxruntime - torch fp32|,
    and, against the same network in fp64 (the exact outputs, up to fp64 rounding), max |torch fp32 - fp64| and
    max |onnxruntime - fp64|."""
    size = NETWORKS[name][2]
    model = _model(name, out_indices=(0, 1, 2, 3) if backbone else None)
    model.load_state_dict(torch.load(ckpt, weights_only=True)['state_dict'])
    model.eval()
    exact = copy.deepcopy(model).double()
    session = _session(onnx_path)
    names = [o.name for o in session.get_outputs()]
    found = {}
    for batch in (1, 3):
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = model.backbone(x) if backbone else (model.logits(x),)
            ref64 = exact.backbone(x.double()) if backbone else (exact.logits(x.double()),)
        got = session.run(None, {'input': x.numpy()})
        assert len(got) == len(ref)
        for n, r, r64, g in zip(names, ref, ref64, got):
            r, r64 = r.numpy(), r64.numpy()
            assert g.shape == r.shape and g.shape[0] == batch, (n, g.shape, r.shape)
            scale = float(np.abs(r).max())
            assert scale > 0
            found[(n, batch)] = dict(ort=float(np.abs(g - r).max()) / scale,
                                     torch_fp64=float(np.abs(r - r64).max()) / scale,
                                     ort_fp64=float(np.abs(g - r64).max()) / scale, scale=scale)
    return found


@pytest.mark.parametrize('backbone', [False, True], ids=['classifier', 'backbone'])
@pytest.mark.parametrize('name', list(NETWORKS))
def test_onnxruntime_matches_torch(name, backbone, checkpoints, tmp_path):
    out = str(tmp_path / f'{name}.onnx')
    argv = [osp.join(REPO, 'configs', 'cls', NETWORKS[name][0]), checkpoints[name], out,
            '--size', str(NETWORKS[name][2]), '--cfg-options', *_argv_options(name)]
    argv += ['--backbone'] if backbone else []
    export_onnx.main(argv)

    proto = onnx.load(out)
    onnx.checker.check_model(proto)
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == 'input' and dims[0].dim_param == 'batch'  # the dynamic batch axis
    assert [d.dim_value for d in dims[1:]] == [3, NETWORKS[name][2], NETWORKS[name][2]]
    expected = ['stage0', 'stage1', 'stage2', 'stage3'] if backbone else ['logits']
    assert [o.name for o in proto.graph.output] == expected
    assert all(o.type.tensor_type.shape.dim[0].dim_param == 'batch' for o in proto.graph.output)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta['bagtricks.mean'] == '123.68,116.779,103.939' and meta['bagtricks.size'] == str(NETWORKS[name][2])

    found = _compare(name, checkpoints[name], out, backbone)
    print(f'\n{name} {"backbone" if backbone else "classifier"} (onnxruntime-torch, torch-fp64, onnxruntime-fp64 '
          'of the scale): ' + ', '.join(f'{n}@{b}: {d["ort"]:.1e} {d["torch_fp64"]:.1e} {d["ort_fp64"]:.1e} '
                                       f'of {d["scale"]:.3g}' for (n, b), d in sorted(found.items())))
    assert max(d['ort'] for d in found.values()) <= NETWORKS[name][3], found
    # onnxruntime is about as far from the exact outputs as PyTorch's own fp32 is: rounding, not another graph
    ort_fp64, torch_fp64 = (max(d[k] for d in found.values()) for k in ('ort_fp64', 'torch_fp64'))
    assert ort_fp64 <= 3 * torch_fp64 + 2e-6, found


def test_run_as_a_user_runs_it(checkpoints, tmp_path):
    """The command line in a fresh interpreter, the config's own size (299 for Inception-V3 would be slow: ResNet)."""
    config = tmp_path / 'tiny_r18d.py'  # a user's config file: the shipped row with the shrunk network
    config.write_text(f"_base_ = {osp.join(REPO, 'configs', 'cls', 'resnet50d_tricks.py')!r}\n"
                      f"model = dict(num_classes={CLASSES}, distill=None, "
                      "backbone=dict(depth=18, stem_channels=8, base_channels=8))\n")
    out = str(tmp_path / 'exports' / 'r18d.onnx')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'export_onnx.py'), str(config),
                           checkpoints['resnet_d'], out, '--opset', '18'],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert 'logits' in proc.stdout and '224' in proc.stdout
    assert sorted(os.listdir(osp.dirname(out))) == ['.bagtricks-written', 'r18d.onnx']  # no temporary file left
    proto = onnx.load(out)
    assert proto.opset_import[0].version == 18
    model = _model('resnet_d')
    model.load_state_dict(torch.load(checkpoints['resnet_d'], weights_only=True)['state_dict'])
    model.eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ref = model.logits(x).numpy()
    (got,) = _session(out).run(None, {'input': x.numpy()})
    assert np.abs(got - ref).max() <= NETWORKS['resnet_d'][3] * np.abs(ref).max()


def test_bad_output_or_missing_checkpoint_is_one_error_line(checkpoints, tmp_path):
    config = osp.join(REPO, 'configs', 'cls', 'mobilenet_tricks.py')
    opts = ['--cfg-options', *_argv_options('mobilenet')]
    folder = tmp_path / 'a_folder'
    folder.mkdir()
    foreign = tmp_path / 'theirs.onnx'
    foreign.write_bytes(b'not ours')
    cases = [
        ([config, str(tmp_path / 'missing.pth'), str(tmp_path / 'm.onnx')], 'missing.pth'),  # reading layer
        ([config, checkpoints['mobilenet'], str(folder)], 'is a folder'),                   # writing layer
    ]
    for argv, words in cases:
        proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'export_onnx.py'), *argv, *opts],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith('error: '), proc.stderr[-3000:]
        assert words in lines[0] and 'Traceback' not in proc.stderr
    assert not osp.exists(tmp_path / 'm.onnx') and os.listdir(folder) == []
    # a file bagtricks did not write is kept, checked before anything is read or exported (in-process)
    with pytest.raises(OutputError, match='not written by bagtricks'):
        export_onnx.main([config, checkpoints['mobilenet'], str(foreign), *opts])
    assert foreign.read_bytes() == b'not ours'
