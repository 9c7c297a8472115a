"""The paper's Figures 3 and 4: classification.logit_gap, tools/plot_schedules.py and tools/plot_logit_gap.py.

Figure 3 is drawn from hand-written mmengine logs (scalars.json), Figure 4 from two tiny classifiers saved
here and evaluated on a generated val folder; no training run is needed."""
import contextlib
import importlib.util
import io
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from classification.logit_gap import LogitGap, logit_gap, theoretical_gap
from engine.guard import run_tool
from cls_helpers import REPO, make_shapes_imagenet
from scale_helpers import child_env

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
C0, C1 = (31, 119, 180), (255, 127, 14)  # matplotlib's first two colours


def tool(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=child_env())


_TOOLS: dict = {}


def in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """The tool's main under the tools' guard in this process (no interpreter start-up): exit code, output."""
    if script not in _TOOLS:
        spec = importlib.util.spec_from_file_location(f'_figures_{script[:-3]}', osp.join(REPO, 'tools', script))
        _TOOLS[script] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_TOOLS[script])
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_tool(_TOOLS[script].main, [str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(script, code, out.getvalue(), err.getvalue())


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def one_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 1 with exactly one ``error:`` line on stderr (no traceback) that names ``words``."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith('error: ')]
    assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def colour_pixels(png, colour) -> int:
    with Image.open(png) as img:
        pixels = np.asarray(img.convert('RGB')).astype(int)
    return int((np.abs(pixels - colour).sum(axis=2) < 30).sum())


# -- the computation ---------------------------------------------------------------------------------------

def test_logit_gap_on_hand_made_logits():
    logits = torch.tensor([[4.0, 1.0, 1.0, -2.0],   # 4 - (1 + 1 - 2) / 3 = 4
                           [0.5, 3.0, 2.0, 1.5],    # 3 - (0.5 + 2 + 1.5) / 3 = 5 / 3
                           [2.0, 2.0, 0.0, -1.0],   # a tie: the other 2 stays among the rest: 2 - 1 / 3
                           [7.0, 7.0, 7.0, 7.0]])   # all equal: no gap
    gaps = logit_gap(logits)
    assert gaps.dtype == torch.float64
    assert gaps.tolist() == pytest.approx([4.0, 5 / 3, 5 / 3, 0.0], abs=1e-12)
    # two classes: the gap is the difference of the two logits, whichever is larger
    assert logit_gap(torch.tensor([[1.0, -2.5], [0.0, 3.0]])).tolist() == pytest.approx([3.5, 3.0])
    with pytest.raises(ValueError, match='K >= 2'):
        logit_gap(torch.zeros(3, 1))
    with pytest.raises(ValueError, match=r'\(N, K\)'):
        logit_gap(torch.zeros(5))


def test_theoretical_gap_formula():
    assert theoretical_gap(0.1, 1000) == pytest.approx(math.log(999 * 0.9 / 0.1))
    assert theoretical_gap(0.1, 1000) == pytest.approx(9.1040, abs=1e-4)  # the paper's "about 9.1"
    assert theoretical_gap(0.1, 10) == pytest.approx(math.log(81.0))  # 4.3944: Fashion-MNIST's 10 classes
    assert theoretical_gap(0.2, 5) == pytest.approx(math.log(16.0))  # 4 x 0.8 / 0.2
    assert theoretical_gap(0.0, 10) == math.inf  # one-hot targets: unbounded
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        theoretical_gap(1.0, 10)
    with pytest.raises(ValueError, match='num_classes'):
        theoretical_gap(0.1, 1)


def test_logit_gap_metric_mean_std_and_per_image_gaps():
    metric = LogitGap()
    metric.process(None, [dict(pred_score=torch.tensor([4.0, 1.0, 1.0, -2.0]), gt_label=0),
                          dict(pred_score=torch.tensor([0.5, 3.0, 2.0, 1.5]), gt_label=1)])
    metric.process(None, [dict(pred_score=torch.tensor([7.0, 7.0, 7.0, 7.0]), gt_label=2)])
    result = metric.evaluate(3)
    gaps = np.array([4.0, 5 / 3, 0.0])
    assert result['logit_gap/mean'] == pytest.approx(gaps.mean())
    assert result['logit_gap/std'] == pytest.approx(gaps.std(ddof=1))
    assert metric.gaps.tolist() == pytest.approx(gaps.tolist())


# -- Figure 3 ------------------------------------------------------------------------------------------------

def write_run(work_dir, config_name, records, timestamp='20260101_000000'):
    folder = osp.join(work_dir, timestamp, 'vis_data')
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, 'scalars.json'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)
    with open(osp.join(work_dir, f'{config_name}.py'), 'w') as f:
        f.write('# the Runner\'s config copy\n')
    return osp.join(folder, 'scalars.json')


def fixture_logs(lrs, top1, per_epoch=4):
    recs = []
    for i, lr in enumerate(lrs):
        step = i + 1
        recs.append(dict(base_lr=lr, lr=lr, loss=2.0 - 0.1 * i, epoch=(step - 1) // per_epoch + 1, iter=step,
                         step=step))
        if step % per_epoch == 0:
            epoch = step // per_epoch
            recs.append({'accuracy/top1': top1[epoch - 1], 'accuracy/top5': 99.0, 'step': epoch})
    return recs


STEP_LR = [0.05, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01]  # warmup, then x0.1 at epoch 1
COS_LR = [0.05, 0.1, 0.0962, 0.0854, 0.0691, 0.05, 0.0309, 0.0146]


@pytest.fixture
def two_runs(tmp_path):
    step = str(tmp_path / 'step')
    write_run(step, 'tiny_step', fixture_logs(STEP_LR, [40.0, 55.0]))
    cos = str(tmp_path / 'cos')
    # a resumed run: the first log's epoch 2 (stale lr 9.0, top-1 1.0) is replaced by the second log
    first = fixture_logs(COS_LR[:4] + [9.0, 9.0], [42.0, 1.0])
    write_run(cos, 'tiny_cosine', first, '20260101_000000')
    write_run(cos, 'tiny_cosine', [r for r in fixture_logs(COS_LR, [42.0, 60.0]) if r['step'] > 4
                                   or ('accuracy/top1' in r and r['step'] > 1)], '20260101_010000')
    return step, cos


def test_figure3_from_two_runs_has_both_curves(tmp_path, two_runs):
    out = tmp_path / 'fig3.png'
    proc = ok(tool('plot_schedules.py', *two_runs, '--out', out))
    assert f'wrote {out}' in proc.stdout
    # labels from the config copies; 4 iterations per epoch; the resumed run's later log wins
    assert 'tiny_step: 8 lr points (4 iterations per epoch), lr 0.05 -> max 0.1 -> 0.01; ' \
           'top-1 epoch 1: 40.00, epoch 2: 55.00' in proc.stdout
    assert 'tiny_cosine: 8 lr points (4 iterations per epoch), lr 0.05 -> max 0.1 -> 0.0146; ' \
           'top-1 epoch 1: 42.00, epoch 2: 60.00' in proc.stdout
    assert out.read_bytes()[:8] == PNG_MAGIC
    with Image.open(out) as img:
        assert img.size == (1000, 400)  # two panels, 10 x 4 inches at 100 dpi
    # both runs are drawn in both panels: C0 (blue) and C1 (orange) lines and markers
    assert colour_pixels(out, C0) > 400, colour_pixels(out, C0)
    assert colour_pixels(out, C1) > 400, colour_pixels(out, C1)
    # the same logs give the same bytes (no version or date in the PNG)
    again = tmp_path / 'again.png'
    ok(in_process('plot_schedules.py', *two_runs, '--out', again, '--labels', 'tiny_step', 'tiny_cosine'))
    assert again.read_bytes() == out.read_bytes()


def test_figure3_reads_epochs_and_iterations(two_runs):
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import plot_schedules
    finally:
        sys.path.pop(0)
    run = plot_schedules.read_run(two_runs[1])
    assert run['iters_per_epoch'] == 4
    assert [e for e, _ in run['lr']] == [i / 4 for i in range(8)]  # fractional epochs, one per iteration
    assert [v for _, v in run['lr']] == COS_LR
    assert run['top1'] == [(1.0, 42.0), (2.0, 60.0)]
    # logged every 3rd iteration: 4 iterations per epoch is the one length that fits steps 3 (epoch 1), 6 and 9
    # (epoch 2) and 12 (epoch 3)
    sparse = [dict(lr=0.1, epoch=e, step=s) for s, e in ((3, 1), (6, 2), (9, 3), (12, 3))]
    assert plot_schedules.iters_per_epoch(sparse) == (4, 4)
    assert plot_schedules.iters_per_epoch([dict(lr=0.1, epoch=1, step=3), dict(lr=0.1, epoch=2, step=9)]) == (5, 8)


def test_figure3_errors(tmp_path, two_runs):
    step, cos = two_runs
    out = tmp_path / 'fig3.png'
    empty = tmp_path / 'empty'
    empty.mkdir()
    one_error(in_process('plot_schedules.py', step, str(empty), '--out', out), str(empty), 'no training logs',
              'vis_data/scalars.json')
    no_lr = str(tmp_path / 'no_lr')
    write_run(no_lr, 'x', [r for r in fixture_logs(STEP_LR, [1.0, 2.0]) if 'lr' not in r])
    one_error(in_process('plot_schedules.py', step, no_lr, '--out', out), 'no learning rate')
    no_val = str(tmp_path / 'no_val')
    write_run(no_val, 'x', [r for r in fixture_logs(STEP_LR, [1.0, 2.0]) if 'lr' in r])
    one_error(in_process('plot_schedules.py', step, no_val, '--out', out), 'no validation', 'accuracy/top1')
    broken = str(tmp_path / 'broken')
    path = write_run(broken, 'x', fixture_logs(STEP_LR, [1.0, 2.0]))
    with open(path, 'a') as f:
        f.write('{"lr": 0.1, "ste\n')
    one_error(in_process('plot_schedules.py', step, broken, '--out', out), 'line 11', 'not JSON')
    one_error(in_process('plot_schedules.py', step, cos, '--out', tmp_path), 'is a folder')
    log = osp.join(step, '20260101_000000', 'vis_data', 'scalars.json')
    before = open(log).read()
    one_error(in_process('plot_schedules.py', step, cos, '--out', log), 'is the input')
    assert open(log).read() == before
    one_error(in_process('plot_schedules.py', step, cos, '--out', out, '--labels', 'only-one'), '1 labels for 2 runs')
    one_error(in_process('plot_schedules.py', step, str(tmp_path / 'missing'), '--out', out), 'run not found')
    assert not out.exists() and not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]


# -- Figure 4 ------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tiny_pair(tmp_path_factory):
    """Two tiny classifiers (eps 0 and eps 0.1 configs), saved as training checkpoints, and a val folder."""
    from backbones.registry import MODELS
    import classification  # noqa: F401
    root = tmp_path_factory.mktemp('gap')
    data = make_shapes_imagenet(str(root / 'data'), num_classes=10, per_class={'train': 1, 'val': 2}, size=32)
    loader = ("dict(batch_size=8, num_workers=0, persistent_workers=False, "
              f"dataset=dict(data_root='{data}', classes=None))")
    pair = []
    for seed, name in enumerate(('fashion_d_cosine', 'fashion_d_cosine_ls')):
        config = root / f'tiny_{name}.py'
        config.write_text(f"_base_ = '{REPO}/configs/cls/{name}.py'\n"
                          "model = dict(backbone=dict(base_channels=8, stem_channels=16))\n"
                          f"val_dataloader = {loader}\ntest_dataloader = {loader}\n")
        torch.manual_seed(seed)
        model = MODELS.build(Config.fromfile(str(config)).model)
        with torch.no_grad():  # spread the logits: a freshly initialised head gives gaps near 0
            model.head.fc.weight.mul_(20.0 * (seed + 1))
        model.eval()
        ckpt = root / f'{name}.pth'
        torch.save({'meta': {'epoch': 2}, 'state_dict': model.state_dict()}, ckpt)
        pair.append((str(config), str(ckpt), model))
    return data, pair


def direct_gaps(config: str, model) -> np.ndarray:
    """The gaps computed here without the tool's Runner: the config's test dataset and pipeline, the model's
    own preprocessor, and max minus the mean of the rest in numpy."""
    from mmengine.dataset import default_collate

    from classification.registry import DATASETS
    cfg = Config.fromfile(config)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    with torch.no_grad():
        outs = model.test_step(default_collate([dataset[i] for i in range(len(dataset))]))
    logits = torch.stack([o['pred_score'] for o in outs]).double().numpy()
    top = logits.max(axis=1)
    return top - (logits.sum(axis=1) - top) / (logits.shape[1] - 1)


def test_figure4_from_two_checkpoints(tmp_path, tiny_pair):
    data, ((cfg0, ckpt0, model0), (cfg1, ckpt1, model1)) = tiny_pair
    out, gaps_out = tmp_path / 'fig4.png', tmp_path / 'gaps.json'
    proc = ok(tool('plot_logit_gap.py', '--run', cfg0, ckpt0, '--run', cfg1, ckpt1, '--out', out,
                   '--gaps-out', gaps_out))
    expected = [direct_gaps(cfg0, model0), direct_gaps(cfg1, model1)]
    assert all(len(g) == 20 for g in expected)
    lines = [line for line in proc.stdout.splitlines() if 'logit gap mean' in line]
    assert len(lines) == 2, proc.stdout
    for line, gaps, name, eps, theory in zip(lines, expected, ('tiny_fashion_d_cosine', 'tiny_fashion_d_cosine_ls'),
                                             ('0', '0.1'), ('none (eps = 0: unbounded)', '4.3944')):
        assert line == (f'{name}: eps {eps}, K 10: logit gap mean {gaps.mean():.4f}, std {gaps.std(ddof=1):.4f} '
                        f'over 20 images; theoretical {theory}'), (line, gaps)
    assert expected[1].mean() > 2 * expected[0].mean()  # the two models really differ (fc scaled x20 and x40)
    saved = json.loads(gaps_out.read_text())['runs']
    assert [r['label_smoothing'] for r in saved] == [0.0, 0.1]
    assert saved[0]['theoretical_gap'] is None and saved[1]['theoretical_gap'] == pytest.approx(math.log(81))
    for run, gaps in zip(saved, expected):
        assert run['num_classes'] == 10 and run['num_images'] == 20
        assert run['gaps'] == pytest.approx(gaps.tolist(), abs=1e-4)  # dataset order, 4 decimals
    assert out.read_bytes()[:8] == PNG_MAGIC
    # both histograms (C0 and C1 at alpha 0.5 over white) and the eps = 0.1 model's theory line (C1, dashed)
    assert colour_pixels(out, (143, 187, 217)) > 300 and colour_pixels(out, (255, 191, 134)) > 300
    assert colour_pixels(out, C1) > 100
    # redrawn from the gaps file alone: the same numbers (from 4-decimal gaps), the same PNG bytes twice
    redraw, again = tmp_path / 'redraw.png', tmp_path / 'again.png'
    proc2 = ok(in_process('plot_logit_gap.py', '--from-gaps', gaps_out, '--out', redraw))
    ok(in_process('plot_logit_gap.py', '--from-gaps', gaps_out, '--out', again))
    assert redraw.read_bytes() == again.read_bytes()
    redrawn = [line for line in proc2.stdout.splitlines() if 'logit gap mean' in line]
    assert len(redrawn) == 2, proc2.stdout
    for line, gaps in zip(redrawn, expected):
        mean, std = float(line.split('mean ')[1].split(',')[0]), float(line.split('std ')[1].split(' ')[0])
        assert mean == pytest.approx(gaps.mean(), abs=2e-4) and std == pytest.approx(gaps.std(ddof=1), abs=2e-4)


def test_figure4_errors(tmp_path, tiny_pair):
    data, ((cfg0, ckpt0, _), (cfg1, ckpt1, _)) = tiny_pair
    out = tmp_path / 'fig4.png'
    one_error(in_process('plot_logit_gap.py', '--out', out), '--run CONFIG CHECKPOINT', '--from-gaps')
    one_error(in_process('plot_logit_gap.py', '--run', cfg0, str(tmp_path / 'nope.pth'), '--out', out),
              'checkpoint not found', 'nope.pth')
    one_error(in_process('plot_logit_gap.py', '--run', cfg0, ckpt0, '--out', tmp_path), 'is a folder')
    one_error(in_process('plot_logit_gap.py', '--run', cfg0, ckpt0, '--out', ckpt0), 'is the input')
    # a checkpoint of another architecture (base_channels 8 vs the config's 16) is refused by the strict check
    one_error(in_process('plot_logit_gap.py', '--run', osp.join(REPO, 'configs', 'cls', 'fashion_d_cosine.py'), ckpt0,
                   '--data-root', data, '--cfg-options', 'test_dataloader.num_workers=0',
                   'test_dataloader.persistent_workers=False', 'test_dataloader.dataset.classes=None', '--out', out),
              ckpt0)
    bad = tmp_path / 'bad.json'
    bad.write_text('{"runs": [{"label": "x", "gaps": []}]}')
    one_error(in_process('plot_logit_gap.py', '--from-gaps', bad, '--out', out), 'run 0 needs', 'gaps')
    bad.write_text('not json')
    one_error(in_process('plot_logit_gap.py', '--from-gaps', bad, '--out', out), 'not JSON')
    assert not out.exists()


# -- make figures --------------------------------------------------------------------------------------------

def test_committed_figures_are_what_make_figures_writes(tmp_path):
    """The Makefile's `figures` commands (same arguments) on the committed inputs give the committed PNGs."""
    fig = osp.join(REPO, 'results', 'figures')
    makefile = open(osp.join(REPO, 'Makefile')).read()
    assert '--labels "step decay (fashion_d_efficient)" "cosine (fashion_d_cosine)"' in makefile
    assert '--from-gaps $(FIG)/logit_gaps.json --out $(FIG)/figure4_logit_gap.png' in makefile
    proc = ok(in_process('plot_schedules.py', osp.join(fig, 'runs', 'fashion_d_efficient'),
                         osp.join(fig, 'runs', 'fashion_d_cosine'), '--labels', 'step decay (fashion_d_efficient)',
                         'cosine (fashion_d_cosine)', '--out', tmp_path / 'fig3.png'))
    assert 'top-1 epoch 1: 63.77, epoch 2: 74.29' in proc.stdout
    assert 'top-1 epoch 1: 69.53, epoch 2: 75.98' in proc.stdout
    assert (tmp_path / 'fig3.png').read_bytes() == open(osp.join(fig, 'figure3_schedules.png'), 'rb').read()
    proc = ok(in_process('plot_logit_gap.py', '--from-gaps', osp.join(fig, 'logit_gaps.json'),
                         '--out', tmp_path / 'fig4.png'))
    assert 'eps 0.1, K 10: logit gap mean 3.6910, std 0.8596 over 10000 images; theoretical 4.3944' in proc.stdout
    assert (tmp_path / 'fig4.png').read_bytes() == open(osp.join(fig, 'figure4_logit_gap.png'), 'rb').read()
