"""Evaluation results: one schema, written by one hook next to the checkpoints, atomically (never a
half-written file), and read back through :func:`read_results`."""
from __future__ import annotations

import math
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

import safe_read
import safe_write
from user_errors import ConfigError, UserInputError


def check_output_file(path: str, what: str = 'output', inputs=()) -> str:
    """Before any work: ``path`` can become a file that replaces nothing but this project's own output, and is
    none of ``inputs`` (the writing layer's checks)."""
    return safe_write.check_output(path, what, input_files=inputs)


def write_results_json(results: dict, path: str) -> str:
    """Write ``results`` (metrics, per-class tables, provenance) as JSON to ``path`` through the writing layer
    (atomic; never over a file it did not write)."""
    return safe_write.write_json(path, _undefined_as_null(results), what='results file')


def _undefined_as_null(value):
    """NaN (mmseg's IoU of a class absent from the images, a metric of no images) is not JSON: it is written
    as null, "undefined"."""
    if isinstance(value, dict):
        return {k: _undefined_as_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_undefined_as_null(v) for v in value]
    if hasattr(value, 'item') and callable(value.item) and getattr(value, 'ndim', 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- the one results schema -------------------------------------------------------------------------------
# Every evaluation (val during training, or a test tool) writes one file of this shape:
#   {"task": "cls" | "det" | "seg",
#    "metrics":    {name: percent},   cls: top1, top5;  det: mAP, AP50;  seg: pixAcc, mIoU, mAcc
#    "per_class":  {table: {class: value}} or None,   cls: top1;  det: AP50 (ap/recall in percent, counts);
#                                                   seg: IoU, Acc
#    "provenance": {split, num_images, config, work_dir, epoch, iter, checkpoint, backbone, ...}}
# A metric joins by setting ``results_task`` and, after each compute_metrics, ``last_results`` =
# dict(metrics=..., per_class=..., num_images=..., **details); details go to the provenance.
TASKS = ('cls', 'det', 'seg')
SCHEMA_KEYS = ('task', 'metrics', 'per_class', 'provenance')


class ResultsFileError(UserInputError):
    """A results file that is not of the one schema."""


def results_record(task: str, metrics: dict, per_class: dict | None = None, **provenance) -> dict:
    if task not in TASKS:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    return dict(task=task, metrics=dict(metrics), per_class=per_class, provenance=provenance)


def check_record(record, where: str, task: str | None = None) -> dict:
    """``record`` is of the one schema (safe_read.RESULTS_RECORD: finite percentages, at least one metric)
    and of ``task`` if given; ``where`` names it in the error."""
    record = safe_read.check_shape(record, safe_read.RESULTS_RECORD, where, ResultsFileError)
    if task is not None and record['task'] != task:
        raise ResultsFileError(f'{where} holds {record["task"]} results; expected {task}')
    return record


def read_results(path: str, task: str | None = None) -> dict:
    """A results file, read through the reading layer and checked to be of the one schema (and of ``task``)."""
    record = safe_read.read_json(path, safe_read.RESULTS_RECORD, 'results file', ResultsFileError)
    return check_record(record, f'results file {path}', task)


@HOOKS.register_module()
class ResultsHook(Hook):
    """Write ``<work_dir>/val_results.json`` after every validation and ``test_results.json`` after a test,
    in the one schema above, from the evaluator's bagtricks metric. Every base config lists it in
    ``custom_hooks``; ``test_file`` may be an absolute path (``tools/test_cls.py --out``). A loop with a
    ``results_file`` (and ``results_provenance``) set while it evaluates (``tools/test_cls.py --sizes``: one record
    per test size) sends that record there, with those keys added to its provenance."""

    priority = 'LOW'

    def __init__(self, val_file: str = 'val_results.json', test_file: str = 'test_results.json'):
        self.files = dict(val=val_file, test=test_file)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'val', runner.val_loop.evaluator)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'test', runner.test_loop.evaluator)

    def _write(self, runner, split: str, evaluator) -> None:
        if not is_main_process():
            return  # the metrics are computed on the main process only
        ours = [m for m in evaluator.metrics if getattr(m, 'results_task', None)]
        if not ours or ours[0].last_results is None:
            runner.logger.warning(f'ResultsHook: the {split} evaluator has no bagtricks metric '
                                  f'({[type(m).__name__ for m in evaluator.metrics]}); no results file written')
            return
        metric = ours[0]
        result = dict(metric.last_results)
        # a loop that evaluates several settings in one run (engine.test_resolution.MultiSizeTestLoop: one per test
        # size) names each one's file and what its record adds to the provenance
        loop = runner.test_loop if split == 'test' else runner.val_loop
        extra = dict(getattr(loop, 'results_provenance', None) or {})
        cfg = runner.cfg
        backbone = cfg.model.get('backbone') or {}
        init_cfg = backbone.get('init_cfg') or {}
        # a training run's own loop has started (RuntimeInfoHook records max_iters); a test tool has none
        trained = runner.message_hub.get_info('max_iters') is not None
        record = results_record(
            metric.results_task, result.pop('metrics'), result.pop('per_class', None),
            split=split, num_images=result.pop('num_images'), **result,
            config=cfg.filename, work_dir=runner.work_dir,
            epoch=runner.epoch if trained else None, iter=runner.iter if trained else None,
            checkpoint=cfg.get('load_from'),
            backbone=dict(type=backbone.get('type'), depth=backbone.get('depth'), variant=backbone.get('variant'),
                          pretrained=init_cfg.get('checkpoint')))
        clash = sorted(set(extra) & set(record['provenance']))
        if clash:
            raise ValueError(f'ResultsHook: the {split} loop\'s provenance {clash} would replace the record\'s own')
        record['provenance'].update(extra)
        path = write_results_json(record, getattr(loop, 'results_file', None) or
                                  osp.join(runner.work_dir, self.files[split]))
        runner.logger.info(f'{split} results written to {path}')


def set_results_file(cfg, split: str, path: str) -> None:
    """Point the config's ResultsHook's ``split`` file at ``path`` (a tool's ``--out``)."""
    hooks = [h for h in cfg.get('custom_hooks') or [] if h.get('type') == 'ResultsHook']
    if not hooks:
        raise ConfigError(f'config {cfg.filename} has no ResultsHook in custom_hooks; expected '
                          "custom_hooks = [dict(type='ResultsHook'), ...] (the base configs have it)")
    hooks[0][f'{split}_file'] = osp.abspath(path)
