"""The command line the three training tools share (OpenMMLab conventions).

    TOOL CONFIG [--work-dir DIR] [--resume [FILE]] [--amp] [--cfg-options k=v ...]
                [--launcher {none,pytorch,slurm,mpi}] [--pretrained FILE]
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


def add_common_args(parser: argparse.ArgumentParser, pretrained: bool = False) -> argparse.ArgumentParser:
    parser.add_argument('config', help='config file (mmengine, may use _base_)')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='FILE',
                        help='resume from FILE, or from the latest checkpoint in the work dir if no FILE')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 + loss scaling on CUDA, bf16 autocast on CPU')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config entries, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: under torchrun)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    if pretrained:
        parser.add_argument('--pretrained', metavar='FILE',
                            help='backbone weights: an exported backbone file or a full pretraining checkpoint')
    return parser


def apply_pretrained(cfg: Config, path: str) -> None:
    """Start the backbone from ``path``; BagResNet loads it strictly and logs what matched."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'--pretrained: no such file {path}')
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=osp.abspath(path))


def build_config(args: argparse.Namespace) -> Config:
    """Read the config and apply the command line to it."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        'work_dirs', osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        cfg.optim_wrapper.type = 'MixedPrecisionOptimWrapper'
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume: no such checkpoint {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    if getattr(args, 'pretrained', None):
        apply_pretrained(cfg, args.pretrained)
    return cfg
