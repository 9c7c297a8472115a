"""Train a detector (mmdet's Faster R-CNN with a project backbone) on Pascal VOC.

    python tools/train_det.py configs/det/faster-rcnn_r50d-cosine_fpn_voc0712.py [--pretrained FILE]
        [--work-dir DIR] [--resume [FILE]] [--amp] [--eval-mode {11points,area}]
        [--cfg-options k=v ...] [--launcher pytorch]

--pretrained takes an exported backbone file or a full pretraining checkpoint (its backbone part);
the backbone loads it strictly before the first iteration (a file of another architecture stops the
run with an error naming both) and logs "loaded N/M backbone tensors from FILE".
Writes logs, checkpoints and val_results.json (mAP, per-class AP) to the work dir.
"""
from __future__ import annotations

import argparse

import torch
from mmengine.runner import Runner

from detection import EVAL_MODES, set_eval_mode
from engine import add_train_args, build_config, runner_from_cfg
from tool_boundary import ToolArgumentParser, run_tool
from user_errors import ConfigError


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Train a detector (mmdet) with a bagtricks backbone')
    add_train_args(parser, pretrained=True)
    parser.add_argument('--eval-mode', choices=EVAL_MODES,
                        help="VOC AP: '11points' (VOC07's, the paper's; the configs' default) or 'area'")
    return parser.parse_args(argv)


def build_runner(argv=None) -> Runner:
    args = parse_args(argv)
    cfg = build_config(args)
    set_eval_mode(cfg, args.eval_mode)
    if cfg.optim_wrapper.get('type') == 'MixedPrecisionOptimWrapper' and not torch.cuda.is_available() \
            and cfg.optim_wrapper.get('amp_dtype', 'auto') != 'fp32':
        # autocast reaches the RPN's proposals, and mmcv's CPU nms / RoIAlign take float32 only. amp_dtype auto
        # is refused on every CPU, also where it would pick fp32, so one command does not run here and fail there
        raise ConfigError('--amp on CPU: mmcv\'s CPU nms and RoIAlign take float32 only (bf16 autocast would reach '
                          'them); train the detector without --amp on a CPU (fp16 AMP on CUDA is supported)')
    runner = runner_from_cfg(cfg)
    init = cfg.model.backbone.get('init_cfg') or {}
    if init.get('type') == 'Pretrained':
        runner.logger.info(f'backbone weights: {init["checkpoint"]} (loaded strictly when training starts)')
    elif not cfg.get('resume'):
        runner.logger.warning('backbone starts from random initialisation: the config sets no pretrained '
                              'file (pass --pretrained FILE for a transfer run)')
    return runner


def main(argv=None) -> Runner:
    runner = build_runner(argv)
    runner.train()
    return runner


if __name__ == '__main__':
    run_tool(main)
