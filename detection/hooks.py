"""Evaluation results as JSON in the work dir, after every validation and test run."""
from __future__ import annotations

import os.path as osp

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmdet.registry import HOOKS

from engine import write_results_json

from .metrics import VOCPerClassMetric


@HOOKS.register_module()
class DetResultsHook(Hook):
    """Write ``<work_dir>/{val,test}_results.json``: the metrics, the per-class AP table of the
    evaluator's :class:`VOCPerClassMetric`, and where the weights came from."""

    priority = 'LOW'

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'val', runner.val_evaluator, metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'test', runner.test_evaluator, metrics)

    @staticmethod
    def _write(runner, split: str, evaluator, metrics) -> None:
        if not is_main_process() or metrics is None:
            return
        voc = [m for m in evaluator.metrics if isinstance(m, VOCPerClassMetric)]
        if not voc:
            raise TypeError(f'DetResultsHook needs a VOCPerClassMetric evaluator, got '
                            f'{[type(m).__name__ for m in evaluator.metrics]}')
        backbone = runner.cfg.model.backbone
        init_cfg = backbone.get('init_cfg') or {}
        # only a training run has its loop built; runner.iter would build one (indexing the training data)
        trained = isinstance(runner._train_loop, BaseLoop)
        results = dict(
            split=split, iter=runner.iter if trained else None, epoch=runner.epoch if trained else None,
            config=runner.cfg.filename,
            eval_mode=voc[0].eval_mode, iou_thrs=voc[0].iou_thrs, metrics=dict(metrics),
            per_class=voc[0].per_class, num_images=voc[0].num_images,
            backbone=dict(type=backbone.type, depth=backbone.get('depth'), variant=backbone.get('variant'),
                          pretrained=init_cfg.get('checkpoint')),
            load_from=runner.cfg.get('load_from'))
        path = write_results_json(results, osp.join(runner.work_dir, f'{split}_results.json'))
        runner.logger.info(f'{split} results written to {path}')
