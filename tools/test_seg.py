"""Evaluate a trained segmentor checkpoint on the config's test set (aAcc, mIoU, per-class table).

    python tools/test_seg.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...] [--launcher pytorch]

Writes test_results.json to the work dir (default work_dirs/<config name>). The checkpoint is read with
the restricted loader and checked strictly against the model the config builds (architecture, variant,
task, classes) before any data is read.
"""
from __future__ import annotations

import argparse
import os.path as osp

from engine import add_test_args, build_config, run_tool, runner_from_cfg
from engine.results import check_output_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a segmentor checkpoint (mmseg)')
    add_test_args(parser, checkpoint_help='checkpoint written by tools/train_seg.py')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.lexists(args.checkpoint):  # a directory, FIFO or loop: the loader names it
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = build_config(args)
    check_output_file(osp.join(cfg.work_dir, 'test_results.json'), 'results file', inputs=(args.checkpoint,))
    cfg.load_from = osp.abspath(args.checkpoint)
    runner = runner_from_cfg(cfg)  # reads the checkpoint and checks it fits the model, before any data
    return runner.test()  # the config's ResultsHook writes <work_dir>/test_results.json


if __name__ == '__main__':
    run_tool(main)
