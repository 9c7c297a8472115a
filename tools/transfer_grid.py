"""Regenerate the paper's Tables 6-8 at Fashion-MNIST scale: for each pretraining variant,
pretrain -> test -> export -> Faster R-CNN (VOC format) -> FCN (ADE20K format).

    python tools/transfer_grid.py [--variants all | b_standard d_efficient ...] [--seeds 0 1 2]
        [--work-dir work_dirs/fashion_grid] [--out results/fashion_grid]
        [--cls-options k=v ...] [--det-options k=v ...] [--seg-options k=v ...]

Cells already done are skipped and an interrupted cell resumes from its last checkpoint, so the same
command continues after a crash. Writes OUT/table.md, OUT/chart.png and OUT/results.json.
Data: tools/prepare_fashion.py (run first; `make demo` does).
"""
import argparse
import os.path as osp
import time

from engine.cli import ConfigError
from engine.guard import run_tool
from engine.results import write_results_json
from experiments.grid import VARIANTS, Grid, markdown_table, plot, summarize


def step_failure(message: str) -> str:
    """One line for a failed step. A step that stopped on a user error (its own ``error:`` line) fails
    the same way when re-run, so the line names that error and asks for a fix; only a crash or a kill
    is worth re-running as it is (finished cells are kept, cut-off ones resume)."""
    lines = message.splitlines()
    own = [line[len('error:'):].strip() for line in lines if line.startswith('error:')]
    if own:
        return f'{lines[0].split(". Last lines")[0]}: {own[-1]}; fix that, then re-run (finished cells are kept)'
    print('\n'.join(lines[1:]), flush=True)  # the step's last lines, for context
    return f'{lines[0].split(". Last lines")[0]}; re-run the same command to continue where it stopped'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--variants', nargs='+', default=['all'], help=f'any of: all {" ".join(VARIANTS)}')
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--work-dir', default='work_dirs/fashion_grid')
    p.add_argument('--out', default='results/fashion_grid')
    for step in ('cls', 'det', 'seg'):
        p.add_argument(f'--{step}-options', nargs='+', default=[], metavar='K=V',
                       help=f'extra --cfg-options for every {step} run')
    args = p.parse_args(argv)
    variants = list(VARIANTS) if args.variants == ['all'] else args.variants
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ConfigError(f'unknown variant(s) {unknown}; expected any of: all {" ".join(VARIANTS)}')
    grid = Grid(args.work_dir, extra=dict(cls=args.cls_options, det=args.det_options, seg=args.seg_options))
    t = time.time()
    try:
        rows = grid.run(variants, args.seeds)
    except (RuntimeError, FileNotFoundError) as e:
        raise ConfigError(step_failure(str(e))) from None
    summary = summarize(rows)
    table = markdown_table(summary)
    write_results_json(dict(rows=rows, seeds=args.seeds), osp.join(args.out, 'results.json'))
    with open(osp.join(args.out, 'table.md'), 'w') as f:
        f.write(table + '\n')
    chart = plot(summary, osp.join(args.out, 'chart.png'))
    print('\n' + table + '\n')
    print(f'{len(variants)} variant(s) x {len(args.seeds)} seed(s) in {(time.time() - t) / 60:.1f} min')
    print(f'table: {osp.join(args.out, "table.md")}\nchart: {chart}\nruns (logs, checkpoints, TensorBoard): '
          f'{args.work_dir}/<variant>/seed<N>/{{cls,det,seg}}')


if __name__ == '__main__':
    run_tool(main)
