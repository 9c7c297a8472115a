"""The tools' command line (OpenMMLab conventions) and the config it gives.

    train tools: CONFIG [--work-dir DIR] [--resume [FILE]] [--amp] [--cfg-options k=v ...]
                 [--launcher {none,pytorch,slurm,mpi}] [--pretrained FILE]
    test tools:  CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...] [--launcher ...] [--weights ema|raw]

Each tool adds its own flags after :func:`add_train_args` / :func:`add_test_args`;
:func:`build_config` reads the config and applies the parsed arguments to it.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from backbones.pretrained import apply_pretrained
from user_errors import ConfigError

from .cfg_options import apply_cfg_options
from .results import check_output_file, set_results_file


class CfgOptionsAction(DictAction):
    """mmengine's DictAction, but ``k`` without ``=v`` (or with an empty key) is a usage error naming it."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values or []:
            key, eq, _ = kv.partition('=')
            if not eq or not key.strip():
                parser.error(f'{option_string} {kv!r}: expected KEY=VALUE (e.g. train_dataloader.batch_size=8)')
        super().__call__(parser, namespace, values, option_string)


def add_train_args(parser: argparse.ArgumentParser, pretrained: bool = False) -> argparse.ArgumentParser:
    """The arguments of pretrain, train_det and train_seg (``pretrained``: the transfer tools' --pretrained)."""
    parser.add_argument('config', help='config file (mmengine, may use _base_)')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='FILE',
                        help='resume from FILE, or from the latest checkpoint in the work dir if no FILE')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision chosen by the device (MixedPrecisionOptimWrapper, amp_dtype auto unless '
                             'the config sets it): fp16 + loss scaling on CUDA; on a CPU bf16 autocast where it has '
                             'bf16 instructions, else fp32; the choice and its reason are logged')
    _add_run_args(parser)
    if pretrained:
        parser.add_argument('--pretrained', metavar='FILE',
                            help='backbone weights: an exported backbone file or a full pretraining checkpoint')
    return parser


def add_test_args(parser: argparse.ArgumentParser, checkpoint_help: str) -> argparse.ArgumentParser:
    """The arguments of test_cls, test_det and test_seg."""
    parser.add_argument('config', help='config file the checkpoint was trained with')
    parser.add_argument('checkpoint', help=checkpoint_help)
    parser.add_argument('--work-dir', help='where logs and results go (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='results file (default: <work-dir>/test_results.json)')
    parser.add_argument('--weights', choices=['ema', 'raw'], default=None,
                        help='which weights of a checkpoint trained with EMAHook: ema (its state_dict, the default '
                             'where it has an ema_state_dict) or raw (the trained ones, kept in ema_state_dict); '
                             'ema on a checkpoint without EMA weights is an error (engine/ema.py)')
    _add_run_args(parser)
    return parser


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config entries, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: under torchrun)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)


def read_config(path: str) -> Config:
    """``Config.fromfile`` with a broken config (syntax, a name it does not define, a missing base) as
    one :class:`ConfigError` naming the file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}' + (' (it is a directory)' if osp.isdir(path) else ''))
    try:
        return Config.fromfile(path)
    except FileNotFoundError as e:
        raise FileNotFoundError(f'config {path}: {" ".join(str(e).split())}') from e
    except SyntaxError as e:
        where = f'{e.filename or path}, line {e.lineno}' if e.lineno else (e.filename or path)
        raise ConfigError(f'config {path}: syntax error ({where}: {e.msg})') from e
    except Exception as e:  # noqa: BLE001 -- executing the config file failed: the file's fault
        raise ConfigError(f'config {path} cannot be read ({type(e).__name__}: {" ".join(str(e).split())[:300]})') from e


def build_config(args: argparse.Namespace) -> Config:
    """Read the config and apply the command line to it."""
    return config_with(args.config, cfg_options=args.cfg_options, launcher=args.launcher, local_rank=args.local_rank,
                       work_dir=args.work_dir, amp=getattr(args, 'amp', False),  # test tools: no --amp, --resume
                       resume=getattr(args, 'resume', None), pretrained=getattr(args, 'pretrained', None))


def config_with(path: str, cfg_options: dict | None = None, launcher: str = 'none', local_rank: int = 0,
                work_dir: str | None = None, amp: bool = False, resume: str | None = None,
                pretrained: str | None = None) -> Config:
    """The config at ``path`` with what the command line sets (``resume``: 'auto' or a checkpoint file)."""
    cfg = read_config(path)
    if cfg_options:
        apply_cfg_options(cfg, cfg_options)
    cfg.launcher = launcher
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    if amp:
        cfg.optim_wrapper.type = 'MixedPrecisionOptimWrapper'  # amp_dtype: the config's, else 'auto'
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume:
        if not osp.lexists(resume):  # anything else (a directory, a FIFO, a loop) the loader names
            raise FileNotFoundError(f'--resume: no such checkpoint {resume}')
        cfg.resume, cfg.load_from = True, resume
    if pretrained:
        apply_pretrained(cfg, pretrained)
    return cfg


def build_test_config(args: argparse.Namespace) -> tuple[Config, str]:
    """The config of a test tool (``add_test_args``) and its results file: the checkpoint exists, the
    results file can be written without replacing an input, and the config's ResultsHook will write it."""
    if not osp.lexists(args.checkpoint):  # a directory, FIFO or loop: the loader names it
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = build_config(args)
    out = check_output_file(args.out or osp.join(cfg.work_dir, 'test_results.json'), 'results file',
                            inputs=(args.checkpoint, args.config))
    set_results_file(cfg, 'test', out)
    cfg.load_from = osp.abspath(args.checkpoint)  # read and checked strictly when the Runner is built
    if getattr(args, 'weights', None):
        cfg.load_weights = args.weights  # BagRunner: the checkpoint's EMA or raw weights (engine/ema.py)
    return cfg, out
