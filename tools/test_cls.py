"""Evaluate a classifier checkpoint on the config's test split (top-1 / top-5) and write JSON.

    python tools/test_cls.py configs/cls/resnet50d_tricks.py work_dirs/resnet50d_tricks/epoch_200.pth
        [--work-dir DIR] [--out FILE] [--cfg-options k=v ...] [--launcher pytorch]

The checkpoint is read with weights_only=True (see backbones.checkpoint). Results go to
<work-dir>/test_results.json unless --out is given.
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction

from engine import BagRunner, build_config, run_tool, write_results_json


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a pretrained classifier')
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help='classifier checkpoint (backbone.* + head.fc.*)')
    parser.add_argument('--work-dir', help='where logs and results go (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='results JSON (default: <work-dir>/test_results.json)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={}, help='override config entries')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = build_config(argparse.Namespace(**vars(args), amp=False, resume=None))
    cfg.load_from = args.checkpoint
    cfg.model.pop('distill', None)  # evaluation needs no teacher
    runner = BagRunner.from_cfg(cfg)
    metrics = runner.test()
    out = args.out or osp.join(cfg.work_dir, 'test_results.json')
    write_results_json(dict(metrics=metrics, config=args.config, checkpoint=osp.abspath(args.checkpoint),
                            num_images=len(runner.test_dataloader.dataset)), out)
    print(f'top-k accuracy: {metrics} -> {out}')
    return metrics


if __name__ == '__main__':
    run_tool(main)
