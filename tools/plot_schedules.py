"""The paper's Figure 3 from finished pretraining runs: learning rate and top-1 validation accuracy over epochs.

    python tools/plot_schedules.py work_dirs/fashion_d_efficient work_dirs/fashion_d_cosine --out fig3.png
        [--labels "step decay" cosine]

Each run is a pretraining work dir: mmengine's LocalVisBackend writes ``<work_dir>/<timestamp>/vis_data/
scalars.json`` (one JSON object per line: ``lr`` with ``epoch`` and the global iteration ``step`` per
logged training iteration, ``accuracy/top1`` with ``step`` = epoch per validation). The lr panel is per logged iteration
(fractional epochs; log with ``default_hooks.logger.interval=1`` for every iteration), the accuracy panel per
validation. A run resumed into the same work dir has several timestamp folders: later logs replace the
earlier ones from the step they start at. Labels are the configs' names (the config copy the Runner writes
into the work dir) unless --labels is given.
"""
from __future__ import annotations

import glob
import math
import os.path as osp

import matplotlib

import safe_write
from engine.results import check_output_file
from safe_read import SCALARS_LINE, read_json_lines
from tool_boundary import ToolArgumentParser, run_tool
from user_errors import UserInputError

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

TOP1 = 'accuracy/top1'


class RunLogError(UserInputError):
    """A work dir whose logs cannot draw Figure 3."""


def log_files(work_dir: str) -> list[str]:
    """The run's scalars.json files in timestamp order (a plain scalars.json file is taken as it is)."""
    if osp.isfile(work_dir):
        return [work_dir]
    if not osp.isdir(work_dir):
        raise FileNotFoundError(f'run not found: {work_dir} (expected a pretraining work dir)')
    files = sorted(glob.glob(osp.join(glob.escape(work_dir), '*', 'vis_data', 'scalars.json')))
    if not files:
        raise RunLogError(f'{work_dir} has no training logs: expected {work_dir}/<timestamp>/vis_data/scalars.json '
                          '(the work dir of a finished tools/pretrain.py run)')
    return files


def _records(path: str) -> list[dict]:
    """The log records of one scalars.json, through the reading layer (safe_read.SCALARS_LINE: UTF-8, bounded,
    one JSON object per line with a positive integer "step", finite lr / epoch / accuracy). A file may
    hold no record (a run stopped before its first log); read_run requires some over the whole run."""
    return read_json_lines(path, SCALARS_LINE, 'training log', RunLogError, min_records=0)


def read_run(work_dir: str) -> dict:
    """``dict(lr=[(epoch, lr)], top1=[(epoch, top1)], iters_per_epoch=L)`` from a work dir's logs."""
    train: list[dict] = []
    val: list[dict] = []
    files = log_files(work_dir)
    for path in files:
        recs = _records(path)
        new_train = [r for r in recs if 'lr' in r]
        new_val = [r for r in recs if TOP1 in r]
        if new_train:  # a resumed run: its logs replace the earlier ones from where it starts
            start = min(r['step'] for r in new_train)
            train = [r for r in train if r['step'] < start]
            val = [r for r in val if r['step'] < new_train[0].get('epoch', 1)]  # val steps are epochs
        train += new_train
        val += new_val
    where = files[0] if len(files) == 1 else f'{work_dir} ({len(files)} logs)'
    if not train:
        raise RunLogError(f'{where}: no learning rate logged ("lr" in no record); expected the training log of a '
                          'pretraining run')
    if not val:
        raise RunLogError(f'{where}: no validation logged ("{TOP1}" in no record); expected a run that '
                          'validated (val_interval) at least once')
    for r in train:
        if not isinstance(r.get('epoch'), int) or r['epoch'] < 1:
            raise RunLogError(f'{where}: step {r["step"]} has no epoch number; expected the log of an epoch-based '
                              'run (log_processor by_epoch=True)')
    length, longest = iters_per_epoch(train)
    if longest != length:
        print(f'note: {where}: {length} to {longest} iterations per epoch fit its logged steps; the lr axis uses '
              f'{length} (log every iteration, default_hooks.logger.interval=1, for an exact axis)')
    lr = sorted(((r['step'] - 1) / length, float(r['lr'])) for r in train)  # lr of the iteration starting there
    top1 = sorted((float(r.get('epoch', r['step'])), float(r[TOP1])) for r in val)
    return dict(lr=lr, top1=top1, iters_per_epoch=length, files=files)


def iters_per_epoch(train: list[dict]) -> tuple[int, int]:
    """The iterations per epoch that fit every logged (epoch, global step): epoch e holds the steps
    (e - 1) L + 1 .. e L. Exact when each epoch's last iteration is logged; else (lowest, highest) that fit."""
    lowest = max(math.ceil(r['step'] / r['epoch']) for r in train)
    later = [(r['step'] - 1) // (r['epoch'] - 1) for r in train if r['epoch'] > 1]
    highest = min(later) if later else lowest
    if highest < lowest:
        raise RunLogError(f'logged steps and epochs contradict each other (no epoch length fits both step '
                          f'{max(train, key=lambda r: r["step"] / r["epoch"])["step"]} and the later epochs)')
    return lowest, highest


def run_label(work_dir: str) -> str:
    """The config's name: the one config copy the Runner dumps into the work dir, else the folder's name."""
    if osp.isdir(work_dir):
        configs = sorted(glob.glob(osp.join(glob.escape(work_dir), '*.py')))
        if len(configs) == 1:
            return osp.splitext(osp.basename(configs[0]))[0]
        return osp.basename(osp.normpath(work_dir))
    return osp.basename(osp.dirname(osp.dirname(osp.dirname(osp.abspath(work_dir))))) or work_dir


def plot(runs: list[dict], labels: list[str], out: str) -> None:
    fig, (ax_lr, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (run, label) in enumerate(zip(runs, labels)):
        colour = f'C{i}'
        ax_lr.plot(*zip(*run['lr']), color=colour, label=label)
        ax_acc.plot(*zip(*run['top1']), color=colour, marker='o', label=label)
    ax_lr.set(xlabel='epoch', ylabel='learning rate', title='(a) learning rate schedule')
    ax_acc.set(xlabel='epoch', ylabel='top-1 validation accuracy (%)', title='(b) validation accuracy')
    ax_acc.set_xlim(ax_lr.get_xlim())  # the same epoch axis in both panels
    for ax in (ax_lr, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    safe_write.write_figure(out, fig)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = ToolArgumentParser(description='Figure 3: lr and top-1 val accuracy over epochs of finished runs')
    parser.add_argument('runs', nargs='+', help='pretraining work dirs (or their scalars.json files)')
    parser.add_argument('--labels', nargs='+', help='legend labels, one per run (default: the configs\' names)')
    parser.add_argument('--out', required=True, help='PNG file to write')
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        raise RunLogError(f'--labels: got {len(args.labels)} labels for {len(args.runs)} runs; expected one per run')
    runs = [read_run(path) for path in args.runs]
    inputs = [f for run in runs for f in run['files']]
    check_output_file(args.out, 'figure', inputs=inputs)
    labels = args.labels or [run_label(path) for path in args.runs]
    plot(runs, labels, args.out)
    for run, label in zip(runs, labels):
        acc = ', '.join(f'epoch {e:g}: {a:.2f}' for e, a in run['top1'])
        print(f'{label}: {len(run["lr"])} lr points ({run["iters_per_epoch"]} iterations per epoch), '
              f'lr {run["lr"][0][1]:.4g} -> max {max(v for _, v in run["lr"]):.4g} -> {run["lr"][-1][1]:.4g}; '
              f'top-1 {acc}')
    print(f'wrote {args.out}')
    return dict(zip(labels, runs))


if __name__ == '__main__':
    run_tool(main)
