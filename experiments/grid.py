"""The paper's Section 6 as one resumable job: pretrain -> export -> Faster R-CNN -> FCN per variant.

Every step runs the project's own command-line tools in a subprocess (the same commands a user types),
so the grid adds orchestration only. A cell (one step of one variant and seed) is done when its
``result.json`` exists; that file is written last and atomically, so an interrupted grid reruns only the
unfinished cells, and those continue from their last checkpoint (``--resume``).

The MobileNet rows (the paper's Table 6 for MobileNet 1.0) are classification only, as in the paper,
which transfers only ResNet-50: their cells are pretrain + test (+ export), no detection or segmentation.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from mmengine.config import Config

from engine.results import write_results_json
from engine.runner import read_last_checkpoint

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass(frozen=True)
class Variant:
    name: str
    label: str            # the paper's row name
    cls_config: str       # pretraining config (relative to the repository)
    paper: tuple          # (Table 6 top-1, Table 7 mAP, Table 8 pixAcc, Table 8 mIoU), None where not given
    teacher: bool = False  # distillation from the grid's own teacher
    transfer: bool = True  # False: classification only (no detection / segmentation cells)
    network: str = 'ResNet-50'  # whose column of the paper's tables ``paper`` holds


TEACHER = Variant('teacher', 'teacher (ResNet-D, deeper)', 'configs/cls/fashion_teacher.py', (None,) * 4)
VARIANTS = {v.name: v for v in (
    Variant('b_standard', 'B-standard', 'configs/cls/fashion_b_standard.py', (None, 77.54, 78.08, 37.05)),
    Variant('d_efficient', 'D-efficient', 'configs/cls/fashion_d_efficient.py', (77.16, 78.30, 78.88, 38.88)),
    Variant('d_cosine', '+ cosine', 'configs/cls/fashion_d_cosine.py', (77.91, 79.23, 79.25, 39.33)),
    Variant('d_smoothing', '+ label smoothing', 'configs/cls/fashion_d_cosine_ls.py', (78.31, 80.71, 78.64, 38.75)),
    Variant('d_distill', '+ distill w/o mixup', 'configs/cls/fashion_d_cosine_ls_kd.py',
            (78.67, 80.96, 78.97, 38.90), teacher=True),
    Variant('d_mixup', '+ mixup w/o distill', 'configs/cls/fashion_d_cosine_ls_mixup.py',
            (79.15, 81.10, 78.47, 37.99)),
    Variant('d_distill_mixup', '+ distill w/ mixup', 'configs/cls/fashion_d_tricks.py',
            (79.29, 81.33, 78.72, 38.40), teacher=True),
    # MobileNet (1.0)'s column of Table 6; MobileNet v1 at width 0.25 at this scale, classification only
    *(Variant(f'mobilenet_{name}', f'MobileNet {label}', f'configs/cls/fashion_mobilenet_{config}.py',
              (top1, None, None, None), teacher=teacher, transfer=False, network='MobileNet (1.0)')
      for name, label, config, top1, teacher in (
          ('efficient', 'efficient', 'efficient', 71.90, False),
          ('cosine', '+ cosine', 'cosine', 72.83, False),
          ('smoothing', '+ label smoothing', 'cosine_ls', 72.93, False),
          ('distill', '+ distill w/o mixup', 'cosine_ls_kd', 71.97, True),
          ('mixup', '+ mixup w/o distill', 'cosine_ls_mixup', 73.28, False),
          ('distill_mixup', '+ distill w/ mixup', 'tricks', 72.51, True))),
)}
MOBILENET_ROWS = [name for name, v in VARIANTS.items() if v.network.startswith('MobileNet')]
DET_CONFIG = 'configs/det/fashion_faster_rcnn.py'
SEG_CONFIG = 'configs/seg/fashion_fcn.py'
METRICS = ('top1', 'mAP', 'pixAcc', 'mIoU')
PROGRESS = ('Epoch(train)', 'Iter(train)', 'Epoch(val)', 'Iter(val) [', 'Epoch(test)', 'mAP', 'mIoU')


def _log(msg: str) -> None:
    print(f'[grid {time.strftime("%H:%M:%S")}] {msg}', flush=True)


class Grid:
    def __init__(self, work_dir: str, python: str = sys.executable, extra: dict | None = None):
        self.work_dir, self.python = work_dir, python
        # extra --cfg-options per step ('cls', 'det', 'seg'), e.g. other data roots or shorter schedules
        self.extra = extra or {}

    # -- running tools -------------------------------------------------------------------------
    def _tool(self, tool: str, *args: str, log: str) -> None:
        """Run one tool; everything goes to ``log``, progress lines are echoed to stdout."""
        cmd = [self.python, osp.join(REPO, 'tools', tool), *args]
        os.makedirs(osp.dirname(log), exist_ok=True)
        tail: list[str] = []
        with open(log, 'a') as f:
            f.write(f'\n$ {" ".join(cmd)}\n')
            f.flush()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO, text=True,
                                    env=dict(os.environ, PYTHONUNBUFFERED='1'))  # progress as it happens
            for line in proc.stdout:
                f.write(line)
                tail = (tail + [line])[-15:]
                if any(k in line for k in PROGRESS):
                    print('    ' + line.split(' - mmengine - INFO - ')[-1].rstrip()[:150], flush=True)
            proc.wait()
        if proc.returncode != 0:
            raise RuntimeError(f'{tool} failed (exit {proc.returncode}); see {log}. Last lines:\n{"".join(tail)}')

    @staticmethod
    def _resume_flag(work: str) -> list[str]:
        return ['--resume'] if osp.isfile(osp.join(work, 'last_checkpoint')) else []

    def _cell(self, variant: str, seed: int, step: str) -> str:
        return osp.join(self.work_dir, variant, f'seed{seed}', step)

    @staticmethod
    def done(cell: str) -> dict | None:
        path = osp.join(cell, 'result.json')
        return json.load(open(path)) if osp.isfile(path) else None

    def _options(self, step: str, *opts: str) -> list[str]:
        opts = [*opts, *self.extra.get(step, [])]
        return ['--cfg-options', *opts] if opts else []

    # -- the three steps -------------------------------------------------------------------------
    def pretrain(self, v: Variant, seed: int) -> dict:
        cell = self._cell(v.name, seed, 'cls')
        if (res := self.done(cell)) is not None:
            _log(f'{v.name} seed {seed}: pretraining done before (top-1 {res["top1"]:.2f})')
            return res
        cfg = Config.fromfile(osp.join(REPO, v.cls_config))
        opts = [f'randomness.seed={seed}']
        if v.teacher:
            opts.append(f'model.distill.teacher_checkpoint={self.teacher_checkpoint()}')
        _log(f'{v.name} seed {seed}: pretraining {v.cls_config} ({cfg.train_cfg.max_epochs} epochs)')
        log = osp.join(cell, 'steps.log')
        self._tool('pretrain.py', v.cls_config, '--work-dir', cell, *self._resume_flag(cell),
                   *self._options('cls', *opts), log=log)
        # the checkpoint the run ended with (--cls-options may change max_epochs), as its work dir names it
        last = read_last_checkpoint(cell) or osp.join(cell, f'epoch_{cfg.train_cfg.max_epochs}.pth')
        self._tool('test_cls.py', v.cls_config, last, '--work-dir', cell, '--out', osp.join(cell, 'test.json'),
                   *self._options('cls', *opts), log=log)
        self._tool('export_backbone.py', last, osp.join(cell, 'backbone.pth'), log=log)
        metrics = json.load(open(osp.join(cell, 'test.json')))['metrics']
        res = dict(top1=metrics['accuracy/top1'], top5=metrics.get('accuracy/top5'),
                   checkpoint=last, backbone=osp.join(cell, 'backbone.pth'), backbone_cfg=dict(cfg.model.backbone))
        write_results_json(res, osp.join(cell, 'result.json'))
        _log(f'{v.name} seed {seed}: top-1 {res["top1"]:.2f}')
        return res

    def teacher_checkpoint(self) -> str:
        return self.pretrain(TEACHER, 0)['checkpoint']

    def _transfer(self, v: Variant, seed: int, step: str, tool: str, config: str, backbone: dict) -> dict:
        cell = self._cell(v.name, seed, step)
        arch = [f'model.backbone.{k}={backbone[k]}' for k in ('depth', 'variant', 'stem_channels', 'base_channels')
                if k in backbone]
        _log(f'{v.name} seed {seed}: {step} ({config}) from {backbone["file"]}')
        self._tool(tool, config, '--pretrained', backbone['file'], '--work-dir', cell, *self._resume_flag(cell),
                   *self._options(step, f'randomness.seed={seed}', *arch),
                   log=osp.join(cell, 'steps.log'))
        return json.load(open(osp.join(cell, 'val_results.json')))

    def detect(self, v: Variant, seed: int, cls: dict) -> dict:
        cell = self._cell(v.name, seed, 'det')
        if (res := self.done(cell)) is not None:
            _log(f'{v.name} seed {seed}: detection done before (mAP {res["mAP"]:.2f})')
        else:
            m = self._transfer(v, seed, 'det', 'train_det.py', DET_CONFIG, dict(cls['backbone_cfg'], file=cls['backbone']))
            res = dict(mAP=100 * m['metrics']['pascal_voc/mAP'], per_class=m.get('per_class'))
            write_results_json(res, osp.join(cell, 'result.json'))
            _log(f'{v.name} seed {seed}: mAP {res["mAP"]:.2f}')
        return res

    def segment(self, v: Variant, seed: int, cls: dict) -> dict:
        cell = self._cell(v.name, seed, 'seg')
        if (res := self.done(cell)) is not None:
            _log(f'{v.name} seed {seed}: segmentation done before (mIoU {res["mIoU"]:.2f})')
        else:
            m = self._transfer(v, seed, 'seg', 'train_seg.py', SEG_CONFIG, dict(cls['backbone_cfg'], file=cls['backbone']))
            res = dict(pixAcc=m['metrics']['aAcc'], mIoU=m['metrics']['mIoU'], per_class=m.get('per_class'))
            write_results_json(res, osp.join(cell, 'result.json'))
            _log(f'{v.name} seed {seed}: pixAcc {res["pixAcc"]:.2f} mIoU {res["mIoU"]:.2f}')
        return res

    def run(self, variants: list[str], seeds: list[int]) -> dict:
        rows = {}
        for name in variants:
            v = VARIANTS[name]
            for seed in seeds:
                cls = self.pretrain(v, seed)
                row = dict(top1=cls['top1'])
                if v.transfer:
                    det = self.detect(v, seed, cls)
                    seg = self.segment(v, seed, cls)
                    row.update(mAP=det['mAP'], pixAcc=seg['pixAcc'], mIoU=seg['mIoU'])
                rows.setdefault(name, []).append(row)
        return rows


def summarize(rows: dict) -> dict:
    """Mean and sample standard deviation of each metric over seeds, per variant; None for a metric that
    a variant has not (the classification-only rows have only top-1)."""
    out = {}
    for name, runs in rows.items():
        out[name] = {m: (statistics.mean(r[m] for r in runs),
                         statistics.stdev([r[m] for r in runs]) if len(runs) > 1 else None, len(runs))
                     if all(m in r for r in runs) else None
                     for m in METRICS}
    return out


def markdown_table(summary: dict) -> str:
    lines = ['| variant | top-1 | mAP | pixAcc | mIoU | paper top-1 | paper mAP | paper pixAcc | paper mIoU |',
             '|---|---|---|---|---|---|---|---|---|']
    for name, stats in summary.items():
        v = VARIANTS.get(name, TEACHER)
        cells = []
        for m in METRICS:
            if stats[m] is None:
                cells.append('-')
                continue
            mean, std, n = stats[m]
            cells.append(f'{mean:.2f}' + (f' ± {std:.2f}' if std is not None else ''))
        paper = [f'{p:.2f}' if p is not None else '-' for p in v.paper]
        lines.append(f'| {v.label} | ' + ' | '.join(cells + paper) + ' |')
    n = {stats['top1'][2] for stats in summary.values()}
    lines.append('')
    networks = sorted({VARIANTS.get(name, TEACHER).network for name in summary})
    lines.append(f'Mean ± sample standard deviation over {"/".join(map(str, sorted(n)))} seed(s); '
                 f'paper columns: Tables 6-8 (ImageNet / VOC / ADE20K; {", ".join(networks)}).')
    return '\n'.join(lines)


def plot(summary: dict, path: str) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    titles = dict(zip(METRICS, ('Fashion-MNIST top-1 (%)', 'detection mAP@0.5 (%)', 'segmentation pixAcc (%)',
                                'segmentation mIoU (%)')))
    metrics = [m for m in METRICS if any(s[m] is not None for s in summary.values())]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 4.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        names = [n for n in summary if summary[n][m] is not None]
        labels = [VARIANTS.get(n, TEACHER).label for n in names]
        title = titles[m]
        means = [summary[n][m][0] for n in names]
        errs = [summary[n][m][1] or 0 for n in names]
        ax.bar(range(len(names)), means, yerr=errs, capsize=3, color='tab:blue')
        lo, hi = min(means), max(means)
        ax.set_ylim(max(0, lo - 3 * (hi - lo + 0.5)), min(100, hi + 2 * (hi - lo + 0.5)))
        ax.set_xticks(range(len(names)), labels, rotation=35, ha='right', fontsize=8)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
