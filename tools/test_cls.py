"""Evaluate a classifier checkpoint on the config's test split (top-1 / top-5) and write JSON.

    python tools/test_cls.py configs/cls/resnet50d_tricks.py work_dirs/resnet50d_tricks/epoch_200.pth
        [--work-dir DIR] [--out FILE] [--cfg-options k=v ...] [--launcher pytorch]

The checkpoint is read with the restricted loader (see backbones.checkpoint) and checked strictly against
the classifier the config builds (architecture, variant, classes) before any data is read. Results go to
<work-dir>/test_results.json (the config's ResultsHook, engine/results.py) unless --out is given; an --out that is a directory or an input file is
refused before the evaluation.
"""
from __future__ import annotations

import argparse

from engine import add_test_args, build_test_config, runner_from_cfg
from tool_boundary import ToolArgumentParser, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Test a pretrained classifier')
    add_test_args(parser, checkpoint_help='classifier checkpoint (backbone.* + head.fc.*)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    cfg, out = build_test_config(parse_args(argv))
    cfg.model.pop('distill', None)  # evaluation needs no teacher
    runner = runner_from_cfg(cfg)  # reads the checkpoint and checks it fits the model
    metrics = runner.test()
    print(f'top-k accuracy: {metrics} -> {out}')
    return metrics


if __name__ == '__main__':
    run_tool(main)
