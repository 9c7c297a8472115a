"""Regenerate the paper's Tables 6-8 at Fashion-MNIST scale: for each row (a pretraining recipe),
pretrain -> test -> export -> Faster R-CNN (VOC format) -> FCN (ADE20K format).

    python tools/transfer_grid.py [--rows all | b_standard d_efficient ...] [--seeds 0 1 2]
        [--work-dir work_dirs/fashion_grid] [--out results/fashion_grid]
        [--cls-options k=v ...] [--det-options k=v ...] [--seg-options k=v ...] [--cls-only]
    python tools/transfer_grid.py --from-results results/fashion_grid/results.json --out results/fashion_grid

Cells already done are skipped and an interrupted cell resumes from its last checkpoint, so the same
command continues after a crash. Writes OUT/results.json (every cell's record, the one results schema),
OUT/table.md and OUT/chart.png; --from-results redraws the table and chart from such a file, no training.
Data: tools/prepare_fashion.py (run first; `make demo` does).
"""
import argparse
import os.path as osp
import time

import safe_write
from engine.results import ResultsFileError, write_results_json
from experiments.grid import METRICS, ROWS, Grid, StepFailed, markdown_table, plot, summarize
from safe_read import GRID_RESULTS, read_json
from tool_boundary import ToolArgumentParser, numpy_seed, run_tool
from user_errors import ConfigError


def step_failure(e: StepFailed) -> str:
    """One line for a failed step. A step that stopped on a user error (its own ``error:`` line) fails
    the same way when re-run, so the line names that error and asks for a fix; only a crash or a kill
    is worth re-running as it is (finished cells are kept, cut-off ones resume)."""
    if e.user_error:
        return f'{e}: {e.user_error}; fix that, then re-run (finished cells are kept)'
    print('\n'.join(e.tail), flush=True)  # the step's last lines, for context
    return f'{e}; re-run the same command to continue where it stopped'


def read_cells(path: str) -> list[dict]:
    """The cell records of a grid's results.json, read through the reading layer (safe_read.GRID_RESULTS:
    at least one cell, each of the one results schema with row and seed, finite percentages), each a row
    of this grid with the metrics its task's columns need."""
    cells = read_json(path, GRID_RESULTS, 'grid results file', ResultsFileError)['cells']
    for i, rec in enumerate(cells):
        needed = [m for step, m in METRICS.values() if step == rec['task'] and m not in rec['metrics']]
        if needed or rec['provenance']['row'] not in ROWS:
            raise ConfigError(f'{path}, cell {i}: expected a row of the grid ({", ".join(ROWS)}) with the {rec["task"]} '
                              f'metrics {", ".join(m for s, m in METRICS.values() if s == rec["task"])}')
    return cells


def write_outputs(cells: list[dict], out: str) -> str:
    summary = summarize(cells)
    table = markdown_table(summary)
    safe_write.write_text(osp.join(out, 'table.md'), table + '\n', what='table')
    plot(summary, osp.join(out, 'chart.png'))
    print('\n' + table + '\n')
    return table


def main(argv=None):
    p = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rows', '--variants', nargs='+', default=['all'], help=f'any of: all {" ".join(ROWS)}')
    p.add_argument('--seeds', nargs='+', type=numpy_seed, default=[0], help='0 to 2**32 - 1 (numpy\'s range)')
    p.add_argument('--work-dir', default='work_dirs/fashion_grid')
    p.add_argument('--out', default='results/fashion_grid')
    p.add_argument('--from-results', metavar='FILE', help="redraw OUT's table and chart from a grid's results.json")
    p.add_argument('--cls-only', action='store_true', help='pretraining and its test only, no transfer cells '
                   '(e.g. a longer schedule through --cls-options train_cfg.max_epochs=N)')
    for step in ('cls', 'det', 'seg'):
        p.add_argument(f'--{step}-options', nargs='+', default=[], metavar='K=V',
                       help=f'extra --cfg-options for every {step} run')
    args = p.parse_args(argv)
    if args.from_results:
        if not osp.isfile(args.from_results):
            raise FileNotFoundError(f'--from-results: no such file {args.from_results}')
        write_outputs(read_cells(args.from_results), args.out)
        print(f'table and chart redrawn in {args.out} from {args.from_results}')
        return
    rows = list(ROWS) if args.rows == ['all'] else args.rows
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ConfigError(f'unknown row(s) {unknown}; expected any of: all {" ".join(ROWS)}')
    grid = Grid(args.work_dir, extra=dict(cls=args.cls_options, det=args.det_options, seg=args.seg_options))
    t = time.time()
    try:
        cells = grid.run(rows, args.seeds, transfer=not args.cls_only)
    except StepFailed as e:
        raise ConfigError(step_failure(e)) from None
    write_results_json(dict(rows=rows, seeds=args.seeds, cells=cells), osp.join(args.out, 'results.json'))
    write_outputs(cells, args.out)
    print(f'{len(rows)} row(s) x {len(args.seeds)} seed(s) in {(time.time() - t) / 60:.1f} min')
    print(f'table: {osp.join(args.out, "table.md")}\nchart: {osp.join(args.out, "chart.png")}\nruns (logs, '
          f'checkpoints, TensorBoard): {args.work_dir}/<row>/seed<N>/{{cls,det,seg}}')


if __name__ == '__main__':
    run_tool(main)
