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
import os.path as osp

from engine import add_test_args, build_config, run_tool, runner_from_cfg
from engine.results import check_output_file, set_results_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a pretrained classifier')
    add_test_args(parser, checkpoint_help='classifier checkpoint (backbone.* + head.fc.*)')
    parser.add_argument('--out', help='results JSON (default: <work-dir>/test_results.json)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.lexists(args.checkpoint):  # a directory, FIFO or loop: the loader names it
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = build_config(args)
    out = check_output_file(args.out or osp.join(cfg.work_dir, 'test_results.json'), 'results file',
                            inputs=(args.checkpoint, args.config))
    set_results_file(cfg, 'test', out)  # the config's ResultsHook writes it
    cfg.load_from = osp.abspath(args.checkpoint)
    cfg.model.pop('distill', None)  # evaluation needs no teacher
    runner = runner_from_cfg(cfg)  # reads the checkpoint and checks it fits the model
    metrics = runner.test()
    print(f'top-k accuracy: {metrics} -> {out}')
    return metrics


if __name__ == '__main__':
    run_tool(main)
