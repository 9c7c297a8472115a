"""``make gpu-check`` (tools/gpu_check.py) without a GPU: the dry run of its own plumbing exits 0, runs a step that
succeeds, one that fails and one that times out, writes a JSON of its schema and renders the README section
into a copy only; and every step's table cell renders from figures of the shape its child writes."""
import hashlib
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'gpu_check.py')


def _tool():
    spec = importlib.util.spec_from_file_location('gpu_check_tool', TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_dry_run_checks_its_plumbing_and_writes_only_to_its_folder(tmp_path):
    readme = osp.join(REPO, 'README.md')
    before = _sha(readme)
    out = tmp_path / 'dry'
    proc = subprocess.run([sys.executable, TOOL, '--dry-run', '--dry-run-dir', str(out), '--out',
                           str(tmp_path / 'never.json')], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.startswith('--dry-run: dry run of the plumbing')
    assert _sha(readme) == before and not (tmp_path / 'never.json').exists()

    tool = _tool()
    doc = json.loads((out / 'gpu_check.json').read_text())
    tool.check_document(doc)
    assert doc['dry_run'] is True and doc['schema'] == tool.SCHEMA
    assert [s['name'] for s in doc['steps']] == [s.name for s in tool.STEPS]
    assert all(s['status'] == 'planned' for s in doc['steps'])
    probes = {p['name']: p for p in doc['plumbing']}
    assert probes['_probe_ok']['status'] == 'ok' and probes['_probe_ok']['figures'] == {'probe': 1.0}
    failed = probes['_probe_fail']
    assert failed['status'] == 'failed' and 'planted failure' in failed['error']
    assert failed['figures'] == {'measured_before_failing': 1.0}  # what a step measured before failing is kept
    assert probes['_probe_timeout']['status'] == 'timeout' and probes['_probe_timeout']['seconds'] < 30

    copy = (out / 'README.md').read_text()
    section = copy[copy.index(tool.BEGIN):copy.index(tool.END)]
    assert all(f'`{s.name}`' in section for s in tool.STEPS) and 'dry run, no GPU' in section
    original = open(readme, encoding='utf-8').read()
    assert copy[:copy.index(tool.BEGIN)] == original[:original.index(tool.BEGIN)]
    assert copy[copy.index(tool.END):] == original[original.index(tool.END):]


def test_steps_render_and_the_schema_refuses_a_broken_record():
    tool = _tool()
    figures = {
        'env': dict(gpu='NVIDIA H100 80GB HBM3', gpus=1, compute_capability='9.0', torch='2.14.1', mmcv='2.1.0',
                    mmcv_cuda_ops=True, deterministic_mode='ok'),
        'fp16_scaler': dict(amp_dtype='fp16', overflow_skipped=True, scale_before=65536.0, scale_after=32768.0,
                            state_restored=True, img_s={'fp16': 2000.0, 'bf16': 1900.0, 'fp32': 900.0},
                            torch_peak_mib=20000.0),
        'det_amp': dict(amp='fp16 autocast + dynamic loss scaling', iter_s=0.2, img_s=10.0, finite=True,
                        validated=True, iters=4),
        'seg_amp': dict(amp='fp16 autocast + dynamic loss scaling', nchw_iter_s=0.3, channels_last_iter_s=0.25,
                        finite=True),
        'bench_data': dict(nvjpeg_img_s=3000.0, worker_img_s_per_core=700.0, train_img_s=2500.0, cores_to_feed=3.6),
        'bench_e2e': dict(tool_img_s=1500.0, plain_img_s=1450.0, ratio=1.03, precision='fp16 + loss scaling',
                          batch=64),
        'nccl': dict(max_diff=1e-8, relative=1e-6, world_size=2),
    }
    steps = []
    for step in tool.STEPS:
        record = dict(name=step.name, what=step.what, command='', timeout_s=step.timeout, status='ok', seconds=12.3,
                      figures=figures[step.name], checks={'x': True}, error=None,
                      peak_gpu=dict(peak_used_mib=20480, above_idle_mib=20000, per_gpu_mib={'0': 20480}))
        steps.append(record)
        assert 'None' not in tool.summary(record) and '?' not in tool.summary(record), tool.summary(record)
    steps.append(dict(steps[0], name='bench_e2e', status='failed', figures={}, error='exit 1: RuntimeError: x'))
    steps.append(dict(steps[0], name='det_amp', status='ok', figures={'iter_s': 'not a number'}))
    doc = tool.document(steps, 480, 300, False, osp.join(REPO, 'results', 'gpu_check.json'))
    tool.check_document(doc)
    section = tool.render_section(doc)
    assert '20,480 MiB used (20,000 above idle), torch 20,000 MiB' in section
    assert 'exit 1: RuntimeError: x' in section and 'figures in `results/gpu_check.json`' in section
    with pytest.raises(ValueError, match='failed without an error'):
        tool.check_document(dict(doc, steps=[dict(steps[0], status='failed', error=None)]))
    with pytest.raises(ValueError, match='README: expected one'):
        tool.fill_readme('no markers here', section)


def test_fp16_scaler_step_runs_its_code_on_the_cpu(tmp_path, monkeypatch):
    """The step's own code (not the GPU): auto taken as fp16, as on CUDA; batch 2 at 32 px, one step per dtype."""
    import time

    import engine.amp
    tool = _tool()
    real = engine.amp.amp_choice
    monkeypatch.setattr(engine.amp, 'amp_choice', lambda req, device=None, cpuinfo=None:
                        ('fp16', 'as on CUDA (test)') if req == 'auto' else real(req, device, cpuinfo))
    out = dict(figures={}, checks={})
    tool._fp16_scaler(str(tmp_path), time.monotonic() + 600, out, batch=2, size=32, iters=1, device='cpu')
    assert out['checks'] == dict(auto_is_fp16=True, loss_scaling_on=True, overflow_skipped=True, scale_halved=True,
                                 state_restored=True)
    f = out['figures']
    assert f['scale_initial'] == 2.0 ** 16 and f['scale_after'] == f['scale_before'] / 2 <= 2.0 ** 15
    assert set(out['figures']['img_s']) == {'fp16', 'bf16', 'fp32'}
