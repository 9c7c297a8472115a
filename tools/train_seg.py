"""Train a segmentor (mmseg's FCN with a project backbone); each validation is written to JSON.

    python tools/train_seg.py configs/seg/fcn_r50d-cosine_ade20k.py [--pretrained FILE]
        [--work-dir DIR] [--resume [FILE]] [--amp] [--cfg-options k=v ...] [--launcher pytorch]

--pretrained takes an exported backbone file or a full pretraining checkpoint; the backbone loads
it strictly (a file of another architecture is an error) and logs how many tensors it loaded.
Writes logs, checkpoints and val_results.json (aAcc, mIoU, mAcc, per-class IoU/Acc) to the work dir.
"""
from __future__ import annotations

import argparse

from mmengine.runner import Runner

from engine import add_train_args, build_config, runner_from_cfg
from tool_boundary import ToolArgumentParser, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Train a segmentor (mmseg) with a bagtricks backbone')
    add_train_args(parser, pretrained=True)
    return parser.parse_args(argv)


def build_runner(argv=None) -> Runner:
    args = parse_args(argv)
    cfg = build_config(args)
    return runner_from_cfg(cfg)


def main(argv=None) -> Runner:
    runner = build_runner(argv)
    runner.train()  # the config's ResultsHook writes <work_dir>/val_results.json after each validation
    return runner


if __name__ == '__main__':
    run_tool(main)
