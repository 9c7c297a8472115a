"""The command line the three training tools share (OpenMMLab conventions).

    TOOL CONFIG [--work-dir DIR] [--resume [FILE]] [--amp] [--cfg-options k=v ...]
                [--launcher {none,pytorch,slurm,mpi}] [--pretrained FILE]
"""
from __future__ import annotations

import argparse
import difflib
import os
import os.path as osp

from mmengine.config import Config, DictAction


class CfgOptionsAction(DictAction):
    """mmengine's DictAction, but ``k`` without ``=v`` (or with an empty key) is a usage error naming it."""

    def __call__(self, parser, namespace, values, option_string=None):
        for kv in values or []:
            key, eq, _ = kv.partition('=')
            if not eq or not key.strip():
                parser.error(f'{option_string} {kv!r}: expected KEY=VALUE (e.g. train_dataloader.batch_size=8)')
        super().__call__(parser, namespace, values, option_string)


def add_common_args(parser: argparse.ArgumentParser, pretrained: bool = False) -> argparse.ArgumentParser:
    parser.add_argument('config', help='config file (mmengine, may use _base_)')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--resume', nargs='?', const='auto', default=None, metavar='FILE',
                        help='resume from FILE, or from the latest checkpoint in the work dir if no FILE')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: fp16 + loss scaling on CUDA, bf16 autocast on CPU')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default={},
                        help='override config entries, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher (pytorch: under torchrun)')
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)
    if pretrained:
        parser.add_argument('--pretrained', metavar='FILE',
                            help='backbone weights: an exported backbone file or a full pretraining checkpoint')
    return parser


def apply_pretrained(cfg: Config, path: str) -> None:
    """Start the backbone from ``path`` (a file, or a name such as ``torchvision://resnet50`` resolved in
    mmengine's cache); the backbone loads it strictly and logs what matched."""
    from backbones.pretrained import checkpoint_url
    if checkpoint_url(path) is None:
        if not osp.isfile(path):
            raise FileNotFoundError(f'--pretrained: no such file {path}')
        path = osp.abspath(path)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
    if cfg.model.get('pretrained'):  # mmseg's model-level spelling would contradict init_cfg
        cfg.model.pretrained = None


class ConfigError(ValueError):
    """A config or command-line value that names nothing or contradicts the config."""


# Runner arguments a config may add at top level without declaring them first.
RUNNER_KEYS = {'custom_hooks', 'default_hooks', 'load_from', 'resume', 'randomness', 'env_cfg', 'log_level',
               'log_processor', 'visualizer', 'experiment_name', 'launcher', 'work_dir', 'auto_scale_lr',
               'default_scope', 'custom_imports', 'cfg', 'data_preprocessor', 'find_unused_parameters'}


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Reject ``--cfg-options`` keys that name nothing in the config, suggesting the closest names.

    A new leaf key is accepted only inside a component (a dict with a ``type``), where it is a
    constructor argument the component validates itself, and at top level for Runner arguments.
    """
    for key in options:
        node, path = cfg._cfg_dict, []
        parts = key.split('.')
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, (list, tuple)):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f'--cfg-options {key}: {".".join(path) or "config"} is a list of {len(node)} '
                                   f'items; expected an index 0..{len(node) - 1}, got {part!r}')
                node = node[int(part)]
            elif isinstance(node, dict):
                if part not in node:
                    if last and ('type' in node or (not path and part in RUNNER_KEYS)):
                        break
                    close = difflib.get_close_matches(part, [str(k) for k in node], n=3, cutoff=0.5)
                    where = '.'.join(path) or 'the config'
                    hint = f'; closest: {", ".join(".".join(path + [c]) for c in close)}' if close else ''
                    raise ConfigError(f'--cfg-options {key}: unknown key {part!r} in {where}{hint}')
                node = node[part]
            else:
                break  # replacing a scalar by a structure is the user's explicit choice
            path.append(part)
        else:
            _check_value_type(key, node, options[key])


def _open_none_parents(cfg: Config, options: dict) -> None:
    """``model.distill.teacher_config=X`` where the config has ``distill=None``: the None becomes an
    empty dict to fill (mmengine would refuse to merge a dict into None)."""
    from mmengine.config import ConfigDict
    for key in options:
        node = cfg._cfg_dict
        for part in key.split('.')[:-1]:
            if isinstance(node, dict):
                if node.get(part, ...) is None:
                    node[part] = ConfigDict()
                node = node.get(part)
            elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break


def _kind(value) -> str | None:
    if isinstance(value, bool):
        return 'a boolean (True or False)'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    if isinstance(value, str):
        return 'a string'
    return None


def _check_value_type(key: str, old, new) -> None:
    """A scalar the config holds keeps its type: ``num_classes=abc`` or ``lr=fast`` is refused here,
    not deep inside a constructor. A number accepts any number (configs write 0 for 0.0; a constructor
    that needs an integer says so); None in the config (or as the new value) accepts anything."""
    expected = _kind(old)
    if expected is None or new is None:
        return
    fits = (isinstance(new, bool) if isinstance(old, bool) else
            isinstance(new, (int, float)) and not isinstance(new, bool) if isinstance(old, (int, float)) else
            isinstance(new, str))
    if not fits:
        raise ConfigError(f'--cfg-options {key}={new!r}: expected {expected} (the config has {old!r})')


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
    cfg = read_config(args.config)
    if args.cfg_options:
        check_cfg_options(cfg, args.cfg_options)
        _open_none_parents(cfg, args.cfg_options)
        try:
            cfg.merge_from_dict(args.cfg_options)
        except (TypeError, KeyError, ValueError) as e:
            raise ConfigError(f'--cfg-options cannot be applied: {" ".join(str(e).split())}') from e
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
        if not osp.lexists(args.resume):  # anything else (a directory, a FIFO, a loop) the loader names
            raise FileNotFoundError(f'--resume: no such checkpoint {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    if getattr(args, 'pretrained', None):
        apply_pretrained(cfg, args.pretrained)
    return cfg
