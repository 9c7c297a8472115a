"""Every user-settable config value that has a valid range, declared once: :data:`TABLE` (key -> check ->
expected text) and :data:`RELATIONS` (values that depend on each other or on the environment), checked by
:func:`check_values` before any work (``engine.preflight.check_config``, before the Runner exists).

A small table rather than jsonschema or pydantic: the keys are paths with wildcards into an open-ended
mmengine/mmdet/mmseg tree whose meaning depends on the component's ``type``, the rules that matter most
relate values across that tree (top-k vs classes, warmup vs run, launcher vs environment), and each error
must read ``key = value: expected ...``; a schema would have to describe all of mmengine's, mmdet's and
mmseg's configs to check a few dozen values, and still need this code for the relations and the message.
"""
from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from user_errors import ConfigError

SEED_MAX = 2 ** 32 - 1  # numpy's seed range (mmengine seeds numpy with it)
RESNET_DEPTHS = (18, 34, 50, 101, 152)


# -- checks: a predicate and the text that says what it accepts --------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or math.isfinite(v)


def _fmt(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


@dataclass(frozen=True)
class Range:
    """A finite number (or an integer) between ``lo`` and ``hi``; ``also``: single values allowed besides."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    none_ok: bool = False
    also: tuple = ()
    note: str = ''

    def __call__(self, v) -> bool:
        if v is None:
            return self.none_ok
        if any(_is_int(v) and v == a for a in self.also):
            return True
        if not (_is_int(v) if self.integer else _is_number(v)):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    @property
    def expected(self) -> str:
        kind = 'an integer' if self.integer else 'a finite number'
        if self.lo is not None and self.hi is not None:
            if self.integer and not self.lo_open and not self.hi_open:
                text = f'{kind} in {_fmt(self.lo)}..{_fmt(self.hi)}'
            else:
                text = (f'{"a number" if not self.integer else kind} in {"(" if self.lo_open else "["}'
                        f'{_fmt(self.lo)}, {_fmt(self.hi)}{")" if self.hi_open else "]"}')
        elif self.lo is not None:
            text = f'{kind} {">" if self.lo_open else ">="} {_fmt(self.lo)}'
        elif self.hi is not None:
            text = f'{kind} {"<" if self.hi_open else "<="} {_fmt(self.hi)}'
        else:
            text = kind
        if self.also:
            text += ', or ' + ' or '.join(map(str, self.also))
        if self.none_ok:
            text = 'None or ' + text
        return text + (f' ({self.note})' if self.note else '')


@dataclass(frozen=True)
class OneOf:
    """One of a few exact values (an integer choice refuses 50.0 and True)."""
    choices: tuple

    def __call__(self, v) -> bool:
        return any(type(v) is type(c) and v == c for c in self.choices)

    @property
    def expected(self) -> str:
        return 'one of ' + ', '.join(map(repr, self.choices))


@dataclass(frozen=True)
class Boolean:
    def __call__(self, v) -> bool:
        return isinstance(v, bool)

    expected = 'True or False'


POSITIVE = Range(lo=0, lo_open=True)                       # a finite number > 0
NON_NEGATIVE = Range(lo=0)                                 # a finite number >= 0
FRACTION = Range(lo=0, hi=1, hi_open=True)                 # [0, 1)
WEIGHT = Range(lo=0, hi=1)                                 # [0, 1]
COUNT = Range(lo=1, integer=True)                          # an integer >= 1
NON_NEGATIVE_INT = Range(lo=0, integer=True)


# -- the table ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """``key``: a dotted path, each part an fnmatch pattern (``*`` = any one key or list index).
    ``component``: only where the dict holding the key has one of these ``type`` names (scope stripped).
    ``task``: 'cls' = only in classification configs (the model is a BagClassifier)."""
    key: str
    check: Callable[[Any], bool]
    component: tuple = ()
    task: str | None = None

    @property
    def expected(self) -> str:
        return self.check.expected


_RESNET = ('BagResNet',)
_EMA = ('EMAHook', 'BagEMAHook')
TABLE: tuple[Row, ...] = (
    # optimizer
    Row('optim_wrapper.optimizer.lr', POSITIVE),
    Row('optim_wrapper.optimizer.weight_decay', NON_NEGATIVE),
    Row('optim_wrapper.optimizer.momentum', FRACTION),
    Row('auto_scale_lr.base_batch_size', COUNT),
    Row('optim_wrapper.accumulative_counts', COUNT),
    # EMA of weights (engine/ema.py): mmengine's momentum is the new weights' share per update
    Row('custom_hooks.*.momentum', Range(lo=0, hi=0.5, lo_open=True,
                                         note="mmengine's convention, the new weights' share per step: timm's "
                                              "decay 0.9998 is momentum 2e-4"), component=_EMA),
    Row('custom_hooks.*.gamma', POSITIVE, component=_EMA),
    Row('custom_hooks.*.update_buffers', Boolean(), component=_EMA),
    # randomness
    Row('randomness.seed', Range(lo=0, hi=SEED_MAX, integer=True, none_ok=True, note="numpy's seed range")),
    Row('randomness.deterministic', Boolean()),
    # loops and intervals (mmengine would run no epoch, or divide by zero)
    Row('train_cfg.max_epochs', COUNT),
    Row('train_cfg.max_iters', COUNT),
    Row('train_cfg.val_interval', COUNT),
    Row('train_cfg.val_begin', NON_NEGATIVE_INT),
    Row('default_hooks.*.interval', Range(lo=1, integer=True, also=(-1,))),
    Row('param_scheduler.*.begin', NON_NEGATIVE),
    Row('param_scheduler.*.end', POSITIVE),
    # data loaders
    Row('*_dataloader.batch_size', COUNT),
    Row('*_dataloader.num_workers', NON_NEGATIVE_INT),
    # the classifier and its label-side tricks (classification/classifier.py)
    Row('model.num_classes', Range(lo=2, integer=True), task='cls'),
    Row('model.label_smoothing', FRACTION, task='cls'),
    Row('model.mixup_alpha', Range(lo=0, note='0 = off'), task='cls'),
    Row('model.dropout', FRACTION, task='cls'),
    Row('model.distill.temperature', POSITIVE, task='cls'),
    Row('model.distill.hard_weight', WEIGHT, task='cls'),
    # detection / segmentation heads
    Row('model.roi_head.bbox_head.num_classes', COUNT),
    Row('model.decode_head.num_classes', COUNT),
    Row('model.auxiliary_head.num_classes', COUNT),
    # backbones: depth, widths, channels (backbones/resnet.py, mobilenet.py)
    Row('model.backbone.depth', OneOf(RESNET_DEPTHS), component=_RESNET),
    Row('model.backbone.base_channels', COUNT, component=_RESNET),
    Row('model.backbone.stem_channels', Range(lo=2, integer=True, none_ok=True, note='the deep stem halves it'),
        component=_RESNET),
    Row('model.backbone.in_channels', COUNT, component=_RESNET),
    Row('model.backbone.num_stages', Range(lo=1, hi=4, integer=True), component=_RESNET),
    Row('model.backbone.frozen_stages', Range(lo=-1, integer=True), component=('BagResNet', 'BagInceptionV3',
                                                                               'BagMobileNetV1')),
    Row('model.backbone.drop_path_rate', FRACTION, component=_RESNET),
    Row('model.backbone.width', POSITIVE, component=('BagMobileNetV1',)),
)


# -- walking the config --------------------------------------------------------------------------------
def _items(node) -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [(str(k), v) for k, v in node.items()]
    if isinstance(node, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(node)]
    return []


def _type_name(node) -> str | None:
    t = node.get('type') if isinstance(node, dict) else None
    if not isinstance(t, str):
        return None
    return t.rsplit('.', 1)[-1].rsplit('/', 1)[-1]  # 'bagtricks.BagResNet', 'torchvision/Resize'


def _matches(root, pattern: str) -> Iterator[tuple[str, Any, Any]]:
    """(key, value, the dict holding it) for every path in ``root`` matching ``pattern``."""
    parts = pattern.split('.')
    frontier = [((), root)]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = []
        for path, node in frontier:
            for k, v in _items(node):
                if fnmatch.fnmatchcase(k, part):
                    if last:
                        if isinstance(node, dict):
                            yield '.'.join(path + (k,)), v, node
                    else:
                        nxt.append((path + (k,), v))
        frontier = nxt


def _root(cfg) -> dict:
    """The config as the plain mapping it holds (mmengine's Config wraps a ConfigDict, a dict)."""
    if isinstance(cfg, dict):
        return cfg
    return {k: cfg[k] for k in cfg.keys()}


def task_of(root: dict) -> str | None:
    return 'cls' if _type_name(root.get('model')) == 'BagClassifier' else None


@dataclass(frozen=True)
class Violation:
    key: str
    value: Any
    expected: str

    def __str__(self) -> str:
        value = repr(self.value)
        if len(value) > 80:
            value = value[:77] + '...'
        return f'{self.key} = {value}: expected {self.expected}'


def table_violations(cfg) -> list[Violation]:
    root = _root(cfg)
    task = task_of(root)
    found = []
    for row in TABLE:
        if row.task and row.task != task:
            continue
        for key, value, holder in _matches(root, row.key):
            if row.component and _type_name(holder) not in row.component:
                continue
            if not row.check(value):
                found.append(Violation(key, value, row.expected))
    return found


# -- relations -----------------------------------------------------------------------------------------
def _loop_length(root: dict) -> tuple[str, Any, bool] | None:
    """(key, length, by_epoch) of the training loop, as mmengine's Runner.build_train_loop picks it."""
    spec = root.get('train_cfg')
    if not isinstance(spec, dict):
        return None
    kind = _type_name(spec)
    if kind is None:
        by_epoch = spec.get('by_epoch', False) is True
    elif kind in ('EpochBasedTrainLoop', 'IterBasedTrainLoop'):
        by_epoch = kind == 'EpochBasedTrainLoop'
    else:
        return None  # a custom loop: its own rules
    key = 'max_epochs' if by_epoch else 'max_iters'
    return f'train_cfg.{key}', spec.get(key), by_epoch


def _is_warmup(s: dict) -> bool:
    kind = _type_name(s) or ''
    if 'Warmup' in kind:
        return True
    if kind == 'LinearLR':  # mmengine's defaults: 1/3 -> 1
        start, end = s.get('start_factor', 1 / 3), s.get('end_factor', 1.0)
        return _is_number(start) and _is_number(end) and start < end
    if kind == 'ConstantLR':
        factor = s.get('factor', 1 / 3)
        return _is_number(factor) and factor < 1
    return False


def warmup_within_run(root: dict) -> Iterator[Violation]:
    """A warmup (LinearWarmupLR, a rising LinearLR, ConstantLR < 1) ends within the run. Compared where
    both are counted in the same unit (epochs with an epoch loop, iterations with an iteration loop)."""
    loop = _loop_length(root)
    if loop is None or not _is_int(loop[1]) or loop[1] < 1:
        return
    length_key, length, loop_by_epoch = loop
    schedulers = root.get('param_scheduler')
    items = [('param_scheduler', schedulers)] if isinstance(schedulers, dict) else \
        [(f'param_scheduler.{i}', s) for i, s in enumerate(schedulers or ()) if isinstance(schedulers, (list, tuple))]
    for where, s in items:
        if not isinstance(s, dict) or not _is_warmup(s) or s.get('by_epoch', True) is not loop_by_epoch:
            continue
        end = s.get('end')
        if _is_number(end) and end > length:
            unit = 'epochs' if loop_by_epoch else 'iterations'
            yield Violation(f'{where}.end', end, f'a warmup that ends within the run ({length_key} = {length} '
                                                 f'{unit}): shorten the warmup or lengthen the run')


ACCURACY = ('Accuracy',)
DEFAULT_TOPK = (1, 5)  # classification/metrics.py Accuracy


def topk_within_classes(root: dict) -> Iterator[Violation]:
    """Classification: every top-k of an Accuracy metric in use is an integer in 1..model.num_classes
    (top-5 of a 2-class model fails only when the first validation runs, after a whole epoch)."""
    if task_of(root) != 'cls':
        return
    n = root['model'].get('num_classes')
    for split in ('val', 'test'):
        if not isinstance(root.get(f'{split}_dataloader'), dict):
            continue  # no such loop: its evaluator never runs
        evaluator = root.get(f'{split}_evaluator')
        metrics = [('', evaluator)] if isinstance(evaluator, dict) else \
            [(f'.{i}', m) for i, m in enumerate(evaluator)] if isinstance(evaluator, (list, tuple)) else []
        for where, metric in metrics:
            if not isinstance(metric, dict) or _type_name(metric) not in ACCURACY:
                continue
            topk = metric.get('topk', DEFAULT_TOPK)
            ks = (topk,) if _is_int(topk) else tuple(topk) if isinstance(topk, (list, tuple)) else None
            key = f'{split}_evaluator{where}.topk'
            if not ks or not all(_is_int(k) and k >= 1 for k in ks):
                yield Violation(key, topk, 'positive integers, e.g. (1, 5)')
            elif _is_int(n) and n >= 2 and max(ks) > n:
                yield Violation(key, topk, f'values in 1..{n} (model.num_classes = {n}); e.g. '
                                           f'{split}_evaluator.topk=1')


# what mmengine's init_dist reads for each launcher (mmengine/dist/utils.py, 0.10.7)
LAUNCHER_ENV = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'LOCAL_RANK'),
                'start it with tools/dist_train.sh TOOL CONFIG NPROC (or torchrun ... --launcher pytorch), '
                'or leave --launcher out for one process'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
              'start it with srun, or leave --launcher out for one process'),
    'mpi': (('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK', 'MASTER_ADDR'),
            "start it with Open MPI's mpirun (MASTER_ADDR set), or leave --launcher out for one process"),
}
_INT_ENV = {'RANK', 'WORLD_SIZE', 'MASTER_PORT', 'LOCAL_RANK', 'SLURM_PROCID', 'SLURM_NTASKS',
            'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'}


def launcher_has_its_environment(root: dict, environ=None) -> Iterator[Violation]:
    """``--launcher pytorch|slurm|mpi``: the variables the launcher's process manager sets are there
    (mmengine would stop with a KeyError traceback, or wait forever for peers)."""
    environ = os.environ if environ is None else environ
    launcher = root.get('launcher', 'none')
    if launcher in (None, 'none'):
        return
    if launcher not in LAUNCHER_ENV:
        yield Violation('launcher', launcher, 'one of ' + ', '.join(map(repr, ('none', *LAUNCHER_ENV))))
        return
    names, how = LAUNCHER_ENV[launcher]
    missing = [n for n in names if not environ.get(n, '').strip()]
    bad = [n for n in names if n in _INT_ENV and n not in missing and not environ[n].strip().isdigit()]
    if missing or bad:
        what = (f'missing {", ".join(missing)}' if missing else '') + \
            ('; ' if missing and bad else '') + (f'not a non-negative integer: {", ".join(bad)}' if bad else '')
        yield Violation('launcher', launcher, f'the environment its process manager sets ({", ".join(names)}; '
                                              f'{what}): {how}')


_FIXED = ('CenterCrop', 'RandomCrop', 'RandomResizedCrop')


def fixed_size(pipeline) -> tuple[bool, str]:
    """Whether every image leaves ``pipeline`` at one size, and why (the step that decides it)."""
    fixed, why = False, 'it has no resize or crop to a fixed size'
    for t in pipeline:
        kind = _type_name(t)
        if kind == 'Resize':
            if 'size' in t:  # torchvision: an int (or [int]) is the shorter side, (h, w) is fixed
                size = t['size']
                fixed = isinstance(size, (list, tuple)) and len(size) == 2 and t.get('max_size') is None
            else:  # mmcv: scale, keep_ratio
                fixed = t.get('scale') is not None and not t.get('keep_ratio', False)
            args = ', '.join(f'{k}={v!r}' for k, v in t.items() if k != 'type')
            why = f"its last resize, {t['type']}({args}), keeps each image's aspect ratio"
        elif kind in _FIXED and t.get('size') is not None:
            fixed, why = True, f"{t['type']} gives one size"
    return fixed, why


def val_batches_stack(root: dict) -> Iterator[Violation]:
    """Classification: a val/test loader with batches of more than one image gets images of one size from
    its pipeline (the classifier's data preprocessor stacks them; it does not pad). mmdet and mmseg pad in
    their data preprocessors, so this is a classification rule."""
    if task_of(root) != 'cls':
        return
    for split in ('val', 'test'):
        loader = root.get(f'{split}_dataloader')
        if not isinstance(loader, dict) or not _is_int(loader.get('batch_size')) or loader['batch_size'] <= 1:
            continue
        pipeline = (loader.get('dataset') or {}).get('pipeline') if isinstance(loader.get('dataset'), dict) else None
        if not isinstance(pipeline, (list, tuple)) or not all(isinstance(t, dict) for t in pipeline):
            continue
        fixed, why = fixed_size(pipeline)
        if not fixed:
            yield Violation(f'{split}_dataloader.batch_size', loader['batch_size'],
                            f"1, or a pipeline whose images all have one size ({why}): end it in "
                            f"dict(type='torchvision/CenterCrop', size=...), or set {split}_dataloader.batch_size=1")


RELATIONS: tuple[Callable[[dict], Iterator[Violation]], ...] = (
    warmup_within_run, topk_within_classes, launcher_has_its_environment, val_batches_stack)


def violations(cfg) -> list[Violation]:
    """Every value of ``cfg`` outside the table, then every broken relation (those whose inputs passed)."""
    found = table_violations(cfg)
    if found:
        return found  # a relation over an invalid value would only repeat it
    root = _root(cfg)
    return [v for relation in RELATIONS for v in relation(root)]


def check_values(cfg) -> None:
    """One :class:`ConfigError` naming the first value out of range (and how many more there are)."""
    found = violations(cfg)
    if found:
        more = f' (and {len(found) - 1} more: {", ".join(v.key for v in found[1:4])}' \
               f'{", ..." if len(found) > 4 else ""})' if len(found) > 1 else ''
        raise ConfigError(f'{found[0]}{more}')
