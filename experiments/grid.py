"""The paper's Section 6 as one resumable job: pretrain -> export -> Faster R-CNN -> FCN per variant.

Every step runs the project's own command-line tools in a subprocess (the same commands a user types),
so the grid adds orchestration only. A cell (one step of one variant and seed) is done when its
``result.json`` exists; that file is written last and atomically, so an interrupted grid reruns only the
unfinished cells, and those continue from their last checkpoint (``--resume``).

The MobileNet rows (the paper's Table 6 for MobileNet 1.0) are classification only, as in the paper,
which transfers only ResNet-50: their cells are pretrain + test (+ export), no detection or segmentation.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from mmengine.config import Config

import safe_write
from engine.results import read_results, write_results_json
from safe_read import read_last_checkpoint

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass(frozen=True)
class Row:
    name: str
    label: str            # the paper's row name
    cls_config: str       # pretraining config (relative to the repository)
    paper: tuple          # (Table 6 top-1, Table 7 mAP, Table 8 pixAcc, Table 8 mIoU), None where not given
    parent: str | None = None  # the row this one adds a trick to (the "beyond noise" comparison)
    teacher: bool = False  # distillation from the grid's own teacher
    transfer: bool = True  # False: classification only (no detection / segmentation cells)
    network: str = 'ResNet-50'  # whose column of the paper's tables ``paper`` holds


TEACHER = Row('teacher', 'teacher (ResNet-D, deeper)', 'configs/cls/fashion_teacher.py', (None,) * 4)
ROWS = {r.name: r for r in (
    Row('b_standard', 'B-standard', 'configs/cls/fashion_b_standard.py', (None, 77.54, 78.08, 37.05)),
    Row('d_efficient', 'D-efficient', 'configs/cls/fashion_d_efficient.py', (77.16, 78.30, 78.88, 38.88),
        parent='b_standard'),
    Row('d_cosine', '+ cosine', 'configs/cls/fashion_d_cosine.py', (77.91, 79.23, 79.25, 39.33), parent='d_efficient'),
    Row('d_smoothing', '+ label smoothing', 'configs/cls/fashion_d_cosine_ls.py', (78.31, 80.71, 78.64, 38.75),
        parent='d_cosine'),
    Row('d_distill', '+ distill w/o mixup', 'configs/cls/fashion_d_cosine_ls_kd.py',
        (78.67, 80.96, 78.97, 38.90), parent='d_smoothing', teacher=True),
    Row('d_mixup', '+ mixup w/o distill', 'configs/cls/fashion_d_cosine_ls_mixup.py',
        (79.15, 81.10, 78.47, 37.99), parent='d_smoothing'),
    Row('d_distill_mixup', '+ distill w/ mixup', 'configs/cls/fashion_d_tricks.py',
        (79.29, 81.33, 78.72, 38.40), parent='d_mixup', teacher=True),
    # MobileNet (1.0)'s column of Table 6; MobileNet v1 at width 0.25 at this scale, classification only
    *(Row(f'mobilenet_{name}', f'MobileNet {label}', f'configs/cls/fashion_mobilenet_{config}.py',
          (top1, None, None, None), parent=parent and f'mobilenet_{parent}', teacher=teacher, transfer=False,
          network='MobileNet (1.0)')
      for name, label, config, top1, parent, teacher in (
          ('efficient', 'efficient', 'efficient', 71.90, None, False),
          ('cosine', '+ cosine', 'cosine', 72.83, 'efficient', False),
          ('smoothing', '+ label smoothing', 'cosine_ls', 72.93, 'cosine', False),
          ('distill', '+ distill w/o mixup', 'cosine_ls_kd', 71.97, 'smoothing', True),
          ('mixup', '+ mixup w/o distill', 'cosine_ls_mixup', 73.28, 'smoothing', False),
          ('distill_mixup', '+ distill w/ mixup', 'tricks', 72.51, 'mixup', True))),
)}
MOBILENET_ROWS = [name for name, r in ROWS.items() if r.network.startswith('MobileNet')]
DET_CONFIG = 'configs/det/fashion_faster_rcnn.py'
SEG_CONFIG = 'configs/seg/fashion_fcn.py'
# the table's columns: (step whose results file holds it, metric name in the one results schema)
METRICS = {'top1': ('cls', 'top1'), 'mAP': ('det', 'mAP'), 'pixAcc': ('seg', 'pixAcc'), 'mIoU': ('seg', 'mIoU')}
PROGRESS = ('Epoch(train)', 'Iter(train)', 'Epoch(val)', 'Iter(val) [', 'Epoch(test)', 'mAP', 'mIoU')


def _log(msg: str) -> None:
    print(f'[grid {time.strftime("%H:%M:%S")}] {msg}', flush=True)


class StepFailed(Exception):
    """A tool the grid ran exited non-zero: which one, its exit status, its log file and last lines, and the
    tool's own ``error:`` message when it stopped on a user error (which a re-run would repeat)."""

    def __init__(self, tool: str, returncode: int, log: str, tail: list[str]):
        self.tool, self.returncode, self.log, self.tail = tool, returncode, log, tail
        own = [line[len('error:'):].strip() for line in tail if line.startswith('error:')]
        self.user_error = own[-1] if own else None
        super().__init__(f'{tool} failed (exit {returncode}); see {log}')


class Grid:
    def __init__(self, work_dir: str, python: str = sys.executable, extra: dict | None = None):
        self.work_dir, self.python = work_dir, python
        # extra --cfg-options per step ('cls', 'det', 'seg'), e.g. other data roots or shorter schedules
        self.extra = extra or {}

    # -- running tools -------------------------------------------------------------------------
    def _tool(self, tool: str, *args: str, log: str) -> None:
        """Run one tool; everything goes to ``log``, progress lines are echoed to stdout."""
        cmd = [self.python, osp.join(REPO, 'tools', tool), *args]
        tail: list[str] = []
        with safe_write.open_log(log) as f:
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
            raise StepFailed(tool, proc.returncode, log, [line.rstrip('\n') for line in tail])

    @staticmethod
    def _resume_flag(work: str) -> list[str]:
        return ['--resume'] if osp.isfile(osp.join(work, 'last_checkpoint')) else []

    def _cell(self, row: str, seed: int, step: str) -> str:
        return osp.join(self.work_dir, row, f'seed{seed}', step)

    @staticmethod
    def finished_record(cell: str) -> dict | None:
        """The cell's record (the one results schema) if the cell finished."""
        path = osp.join(cell, 'result.json')
        return read_results(path) if osp.isfile(path) else None

    @staticmethod
    def _record(cell: str, results_file: str, row: Row, seed: int, step: str, **extra) -> dict:
        """The tool's results file, with the grid's coordinates added to its provenance, as the cell's
        record; written last, atomically: the cell is done."""
        record = read_results(results_file, task=step)
        record['provenance'].update(row=row.name, seed=seed, step=step, **extra)
        write_results_json(record, osp.join(cell, 'result.json'))
        return record

    def _options(self, step: str, *opts: str) -> list[str]:
        opts = [*opts, *self.extra.get(step, [])]
        return ['--cfg-options', *opts] if opts else []

    # -- the three steps -------------------------------------------------------------------------
    def pretrain(self, row: Row, seed: int) -> dict:
        cell = self._cell(row.name, seed, 'cls')
        if (rec := self.finished_record(cell)) is not None:
            _log(f'{row.name} seed {seed}: pretraining done before (top-1 {rec["metrics"]["top1"]:.2f})')
            return rec
        cfg = Config.fromfile(osp.join(REPO, row.cls_config))
        opts = [f'randomness.seed={seed}']
        if row.teacher:
            opts.append(f'model.distill.teacher_checkpoint={self.teacher_checkpoint()}')
        _log(f'{row.name} seed {seed}: pretraining {row.cls_config} (the config\'s {cfg.train_cfg.max_epochs} epochs'
             + (', --cls-options may change it)' if self.extra.get('cls') else ')'))
        log = osp.join(cell, 'steps.log')
        self._tool('pretrain.py', row.cls_config, '--work-dir', cell, *self._resume_flag(cell),
                   *self._options('cls', *opts), log=log)
        # the checkpoint the run ended with (--cls-options may change max_epochs), as its work dir names it
        last = read_last_checkpoint(cell) or osp.join(cell, f'epoch_{cfg.train_cfg.max_epochs}.pth')
        test_file = osp.join(cell, 'test_results.json')
        self._tool('test_cls.py', row.cls_config, last, '--work-dir', cell, '--out', test_file,
                   *self._options('cls', *opts), log=log)
        self._tool('export_backbone.py', last, osp.join(cell, 'backbone.pth'), log=log)
        rec = self._record(cell, test_file, row, seed, 'cls', trained_checkpoint=last,
                           backbone_file=osp.join(cell, 'backbone.pth'), backbone_cfg=dict(cfg.model.backbone))
        _log(f'{row.name} seed {seed}: top-1 {rec["metrics"]["top1"]:.2f}')
        return rec

    def teacher_checkpoint(self) -> str:
        return self.pretrain(TEACHER, 0)['provenance']['trained_checkpoint']

    def transfer(self, row: Row, seed: int, step: str, cls: dict) -> dict:
        """Detection (step 'det') or segmentation ('seg') from the pretraining cell ``cls``."""
        cell = self._cell(row.name, seed, step)
        tool, config = dict(det=('train_det.py', DET_CONFIG), seg=('train_seg.py', SEG_CONFIG))[step]
        if (rec := self.finished_record(cell)) is None:
            backbone, file = cls['provenance']['backbone_cfg'], cls['provenance']['backbone_file']
            arch = [f'model.backbone.{k}={backbone[k]}'
                    for k in ('depth', 'variant', 'stem_channels', 'base_channels') if k in backbone]
            _log(f'{row.name} seed {seed}: {step} ({config}) from {file}')
            self._tool(tool, config, '--pretrained', file, '--work-dir', cell, *self._resume_flag(cell),
                       *self._options(step, f'randomness.seed={seed}', *arch), log=osp.join(cell, 'steps.log'))
            rec = self._record(cell, osp.join(cell, 'val_results.json'), row, seed, step)
            done = 'done'
        else:
            done = 'done before'
        figures = ', '.join(f'{m} {rec["metrics"][m]:.2f}' for m, (s, _) in METRICS.items() if s == step)
        _log(f'{row.name} seed {seed}: {"detection" if step == "det" else "segmentation"} {done} ({figures})')
        return rec

    def run(self, rows: list[str], seeds: list[int], transfer: bool = True) -> list[dict]:
        """Every cell of ``rows`` x ``seeds`` (``transfer=False``: pretraining cells only); returns their
        records."""
        records = []
        for name in rows:
            row = ROWS[name]
            for seed in seeds:
                cls = self.pretrain(row, seed)
                records.append(cls)
                if row.transfer and transfer:
                    records += [self.transfer(row, seed, 'det', cls), self.transfer(row, seed, 'seg', cls)]
        return records


def per_seed(records: list[dict]) -> dict:
    """{row: {seed: {column: value}}} from cell records (the table's columns, METRICS)."""
    rows: dict = {}
    for rec in records:
        prov = rec['provenance']
        values = rows.setdefault(prov['row'], {}).setdefault(prov['seed'], {})
        values.update({col: rec['metrics'][m] for col, (step, m) in METRICS.items() if step == rec['task']})
    return rows


def summarize(records: list[dict]) -> dict:
    """Mean, sample standard deviation and number of seeds of each column, per row (in ROWS order);
    None for a column a row has not (the classification-only rows have only top-1)."""
    out = {}
    table = per_seed(records)
    for name in sorted(table, key=lambda n: list(ROWS).index(n) if n in ROWS else -1):
        runs = list(table[name].values())
        out[name] = {m: (statistics.mean(r[m] for r in runs),
                         statistics.stdev([r[m] for r in runs]) if len(runs) > 1 else None, len(runs))
                     if all(m in r for r in runs) else None
                     for m in METRICS}
    return out


def beyond_noise(summary: dict, name: str, metric: str) -> tuple[float, float] | None:
    """(difference of means, its standard error) of ``name`` against its parent row, or None without a
    parent or with fewer than two seeds on either side. The standard error of a difference of two
    independent means: sqrt(s1^2 / n1 + s2^2 / n2)."""
    row = ROWS.get(name)
    parent = row.parent if row else None
    if parent not in summary or summary[name][metric] is None or summary[parent][metric] is None:
        return None
    (m1, s1, n1), (m0, s0, n0) = summary[name][metric], summary[parent][metric]
    if s1 is None or s0 is None:
        return None
    return m1 - m0, math.sqrt(s1 ** 2 / n1 + s0 ** 2 / n0)


def _noise_cell(summary: dict, name: str) -> str:
    """'top-1 +1.20*, mAP -0.50': each column's difference against the parent row; * where it exceeds
    two standard errors of the difference."""
    parts = []
    for m in METRICS:
        if (d := beyond_noise(summary, name, m)) is not None:
            diff, se = d
            parts.append(f'{LABELS[m]} {diff:+.2f}' + ('*' if abs(diff) > 2 * se else ''))
    return ', '.join(parts) if parts else '-'


LABELS = dict(top1='top-1', mAP='mAP', pixAcc='pixAcc', mIoU='mIoU')


def markdown_table(summary: dict) -> str:
    lines = ['| row | top-1 | mAP | pixAcc | mIoU | vs parent row (* beyond noise) '
             '| paper top-1 | paper mAP | paper pixAcc | paper mIoU |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for name, stats in summary.items():
        row = ROWS.get(name, TEACHER)
        cells = []
        for m in METRICS:
            if stats[m] is None:
                cells.append('-')
                continue
            mean, std, n = stats[m]
            cells.append(f'{mean:.2f}' + (f' ± {std:.2f}' if std is not None else ''))
        paper = [f'{p:.2f}' if p is not None else '-' for p in row.paper]
        lines.append(f'| {row.label} | ' + ' | '.join(cells + [_noise_cell(summary, name)] + paper) + ' |')
    n = {stats['top1'][2] for stats in summary.values()}
    lines.append('')
    networks = sorted({ROWS.get(name, TEACHER).network for name in summary})
    lines.append(f'Mean ± sample standard deviation over {"/".join(map(str, sorted(n)))} seed(s). "vs parent row": '
                 'the difference of means against the row this one adds a trick to (B-standard for D-efficient, '
                 'D-efficient for + cosine, + label smoothing for both distill w/o mixup and mixup w/o distill, '
                 'mixup w/o distill for distill w/ mixup); * where it exceeds two standard errors of the '
                 f'difference, sqrt(s1²/n1 + s2²/n2). Paper columns: Tables 6-8 (ImageNet / VOC / ADE20K; '
                 f'{", ".join(networks)}).')
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
        labels = [ROWS.get(n, TEACHER).label for n in names]
        title = titles[m]
        means = [summary[n][m][0] for n in names]
        errs = [summary[n][m][1] or 0 for n in names]
        ax.bar(range(len(names)), means, yerr=errs, capsize=4, color='tab:blue', ecolor='black')
        lo, hi = min(means), max(means)
        ax.set_ylim(max(0, lo - 3 * (hi - lo + 0.5)), min(100, hi + 2 * (hi - lo + 0.5)))
        ax.set_xticks(range(len(names)), labels, rotation=35, ha='right', fontsize=8)
        ax.set_title(title, fontsize=10)
    n = sorted({s['top1'][2] for s in summary.values() if s['top1']})
    fig.suptitle(f'mean over {"/".join(map(str, n))} seed(s); error bars: sample standard deviation', fontsize=9)
    fig.tight_layout()
    safe_write.write_figure(path, fig, dpi=110, what='chart')  # same records, same bytes
    plt.close(fig)
    return path
