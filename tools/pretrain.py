"""ImageNet-style pretraining with the paper's tricks, each a config switch.

    python tools/pretrain.py configs/cls/resnet50d_tricks.py [--work-dir DIR] [--resume [FILE]] [--amp]
        [--cfg-options k=v ...] [--launcher pytorch] [--dry-run [--world-size N]]
    torchrun --nproc-per-node 8 tools/pretrain.py CONFIG --launcher pytorch

--dry-run prints the resolved trick table (which trick is on, lr after linear scaling, epochs) and exits.
Checkpoints (every epoch, the best by val top-1 and the last), logs and TensorBoard events go to the
work dir (default work_dirs/<config name>).
"""
from __future__ import annotations

import argparse
import os

from engine import add_train_args, build_config, runner_from_cfg
from tool_boundary import ToolArgumentParser, run_tool, world_size


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Pretrain a classifier (mmengine Runner) with the bag of tricks')
    add_train_args(parser)
    parser.add_argument('--dry-run', action='store_true', help='print the resolved trick table and exit')
    parser.add_argument('--world-size', type=world_size, default=os.environ.get('WORLD_SIZE', '8'),
                        help='processes assumed by --dry-run for the total batch (default: $WORLD_SIZE, else 8 '
                             'as in the paper)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    if args.dry_run:
        import classification  # noqa: F401  (registers LinearWarmupLR for the table)
        from classification.trick_report import format_table, trick_table
        from engine.valid_values import check_values
        check_values(cfg)  # the values a run would refuse, refused here too
        print(f'config: {args.config}\n' + format_table(trick_table(cfg, args.world_size)))
        return None
    runner = runner_from_cfg(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    run_tool(main)
