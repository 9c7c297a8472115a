"""Evaluate a trained segmentor checkpoint on the config's test set (aAcc, mIoU, per-class table).

    python tools/test_seg.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options k=v ...]
        [--launcher pytorch]

Writes test_results.json (the one results schema) to the work dir (default work_dirs/<config name>), or
--out. The checkpoint is read with the restricted loader and checked strictly against the model the config
builds (architecture, variant, task, classes) before any data is read.
"""
from __future__ import annotations

import argparse

from engine import add_test_args, build_test_config, runner_from_cfg
from tool_boundary import ToolArgumentParser, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Test a segmentor checkpoint (mmseg)')
    add_test_args(parser, checkpoint_help='checkpoint written by tools/train_seg.py')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    cfg, out = build_test_config(parse_args(argv))
    runner = runner_from_cfg(cfg)  # reads the checkpoint and checks it fits the model, before any data
    return runner.test()  # the config's ResultsHook writes ``out``


if __name__ == '__main__':
    run_tool(main)
