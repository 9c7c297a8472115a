"""The paper's Figure 4: the logit gap (max logit minus the mean of the others) on the validation set for
classifiers trained with and without label smoothing, with the theoretical value log((K-1)(1-eps)/eps).

    python tools/plot_logit_gap.py --run configs/cls/fashion_d_cosine.py work_dirs/fashion_d_cosine/epoch_2.pth \
        --run configs/cls/fashion_d_cosine_ls.py work_dirs/fashion_d_cosine_ls/epoch_2.pth \
        --out fig4.png [--gaps-out gaps.json] [--data-root DIR] [--labels A B] [--cfg-options k=v ...]
    python tools/plot_logit_gap.py --from-gaps gaps.json --out fig4.png

Each checkpoint is evaluated as tools/test_cls.py does: the Runner the config names, the checkpoint read
with the restricted loader and checked strictly against the classifier, the config's test split and
test-time pipeline (``--data-root`` points it at another ImageNet-style folder with ``val/<class>/``), with
the evaluator replaced by classification.logit_gap.LogitGap. eps and K come from the config
(``model.label_smoothing``, ``model.num_classes``); eps = 0 has no theoretical line (the gap is unbounded).
``--gaps-out`` keeps the per-image gaps, from which ``--from-gaps`` redraws the figure without a model.
"""
from __future__ import annotations

import argparse
import math
import os.path as osp
import tempfile
import time

import matplotlib
import numpy as np

import safe_write
from engine import runner_from_cfg, write_results_json
from engine.cli import CfgOptionsAction, config_with
from engine.results import check_output_file
from safe_read import LOGIT_GAPS, read_json
from tool_boundary import ToolArgumentParser, run_tool
from user_errors import UserInputError

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

DIGITS = 4  # per-image gaps kept in --gaps-out (0.0001 of a logit)


class GapFileError(UserInputError):
    """A --from-gaps file that is not what --gaps-out writes."""


def evaluate(config: str, checkpoint: str, index: int, args, work_dir: str) -> dict:
    """Per-image gaps of one checkpoint on its config's test split, through the project's Runner."""
    import classification.logit_gap  # noqa: F401  (registers the LogitGap metric)
    from classification.logit_gap import theoretical_gap
    if not osp.lexists(checkpoint):  # a directory, FIFO or loop: the loader names it
        raise FileNotFoundError(f'checkpoint not found: {checkpoint}')
    cfg = config_with(config, cfg_options=args.cfg_options, work_dir=work_dir)
    if args.data_root:
        if not osp.isdir(osp.join(args.data_root, 'val')):
            raise FileNotFoundError(f'--data-root {args.data_root}: no val/ folder; expected an ImageNet-style '
                                    'folder with val/<class>/<image>')
        cfg.test_dataloader.dataset.data_root = args.data_root
    eps = float(cfg.model.get('label_smoothing', 0.0))
    num_classes = int(cfg.model.num_classes)
    cfg.load_from = checkpoint
    cfg.model.pop('distill', None)  # evaluation needs no teacher
    cfg.test_evaluator = dict(type='LogitGap')
    # one logger / visualizer instance per evaluation, also for the same config twice within a second
    cfg.experiment_name = f'logit_gap_{index}_{time.strftime("%Y%m%d_%H%M%S")}'
    runner = runner_from_cfg(cfg)  # reads the checkpoint and checks it fits the model
    metrics = runner.test()
    gaps = runner.test_loop.evaluator.metrics[0].gaps
    theory = theoretical_gap(eps, num_classes)
    return dict(config=config, checkpoint=checkpoint, label_smoothing=eps, num_classes=num_classes,
                theoretical_gap=None if math.isinf(theory) else theory, num_images=len(gaps),
                mean=metrics['logit_gap/mean'], std=metrics['logit_gap/std'],
                gaps=[round(g, DIGITS) for g in gaps.tolist()])


def read_gaps(path: str) -> list[dict]:
    """The runs of a --gaps-out file, checked; mean, std and the theoretical value recomputed from it."""
    from classification.logit_gap import theoretical_gap
    runs = read_json(path, LOGIT_GAPS, '--from-gaps file', GapFileError)['runs']  # safe_read: shape, finite
    out = []
    for run in runs:
        gaps = np.asarray(run['gaps'], dtype=np.float64)
        theory = theoretical_gap(float(run['label_smoothing']), run['num_classes'])
        out.append(dict(run, theoretical_gap=None if math.isinf(theory) else theory, num_images=len(gaps),
                        mean=float(gaps.mean()), std=float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0))
    return out


def plot(runs: list[dict], out: str) -> None:
    every = np.concatenate([np.asarray(r['gaps'], dtype=np.float64) for r in runs])
    bins = np.linspace(every.min(), every.max(), 61)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for i, run in enumerate(runs):
        colour = f'C{i}'
        ax.hist(run['gaps'], bins=bins, density=True, alpha=0.5, color=colour,
                label=f'{run["label"]} (eps={run["label_smoothing"]:g}): mean {run["mean"]:.2f}, std {run["std"]:.2f}')
        if run['theoretical_gap'] is not None:
            ax.axvline(run['theoretical_gap'], color=colour, linestyle='--', linewidth=2,
                       label=f'theory, eps={run["label_smoothing"]:g}, K={run["num_classes"]}: '
                             f'log((K-1)(1-eps)/eps) = {run["theoretical_gap"]:.2f}')
    ax.set(xlabel='max logit - mean of the other logits', ylabel='density',
           title='Figure 4: logit gap on the validation set')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    safe_write.write_figure(out, fig)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Figure 4: logit gap histograms with and without label smoothing')
    parser.add_argument('--run', nargs=2, action='append', metavar=('CONFIG', 'CHECKPOINT'),
                        help='a classifier checkpoint and the config it was trained with (repeat: one per model)')
    parser.add_argument('--from-gaps', metavar='FILE', help='redraw from a --gaps-out file instead of checkpoints')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--gaps-out', metavar='FILE', help='also write the per-image gaps (JSON) here')
    parser.add_argument('--labels', nargs='+', help='legend labels, one per run (default: the configs\' names)')
    parser.add_argument('--data-root', help='ImageNet-style folder whose val/ split replaces the config\'s')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override entries of every config')
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if bool(args.run) == bool(args.from_gaps):
        raise UserInputError('give either --run CONFIG CHECKPOINT (once per model) or --from-gaps FILE')
    count = len(args.run) if args.run else None
    if args.labels and count is not None and len(args.labels) != count:
        raise UserInputError(f'--labels: got {len(args.labels)} labels for {count} runs; expected one per run')
    inputs = [p for pair in args.run or [] for p in pair] + [args.from_gaps]
    check_output_file(args.out, 'figure', inputs=inputs)
    if args.gaps_out:
        check_output_file(args.gaps_out, '--gaps-out file', inputs=inputs + [args.out])
        if osp.abspath(args.gaps_out) == osp.abspath(args.out):
            raise UserInputError(f'--gaps-out {args.gaps_out} is also --out; expected two different files')
    if args.from_gaps:
        runs = read_gaps(args.from_gaps)
        if args.labels and len(args.labels) != len(runs):
            raise UserInputError(f'--labels: got {len(args.labels)} labels for the {len(runs)} runs in '
                                 f'{args.from_gaps}; expected one per run')
    else:
        with tempfile.TemporaryDirectory(prefix='logit_gap_') as tmp:  # the evaluations' logs are not kept
            runs = [evaluate(config, ckpt, i, args, osp.join(tmp, str(i))) for i, (config, ckpt) in enumerate(args.run)]
        for run in runs:
            run['label'] = osp.splitext(osp.basename(run['config']))[0]
    for run, label in zip(runs, args.labels or []):
        run['label'] = label
    if args.gaps_out:
        write_results_json(dict(figure='Figure 4 of the paper: per-image logit gap (max logit minus the mean of '
                                       'the others) on the validation set', runs=runs), args.gaps_out)
    plot(runs, args.out)
    for run in runs:
        theory = (f'{run["theoretical_gap"]:.4f}' if run['theoretical_gap'] is not None
                  else 'none (eps = 0: unbounded)')
        print(f'{run["label"]}: eps {run["label_smoothing"]:g}, K {run["num_classes"]}: logit gap mean '
              f'{run["mean"]:.4f}, std {run["std"]:.4f} over {run["num_images"]} images; theoretical {theory}')
    if args.gaps_out:
        print(f'wrote {args.gaps_out}')
    print(f'wrote {args.out}')
    return runs


if __name__ == '__main__':
    run_tool(main)
