"""mmseg's IoUMetric, keeping its per-class figures (it only logs them) for the JSON result file."""
from __future__ import annotations

import math
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.runner import BaseLoop
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from engine import write_results_json


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """IoUMetric (aAcc, mIoU, mAcc and the per-class table in the log) that also keeps the last
    evaluation's numbers in ``self.last_results`` for the tools to write to disk."""

    last_results: dict | None = None

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        totals = [sum(parts) for parts in zip(*results)]
        ret = self.total_area_to_metrics(*totals, self.metrics, self.nan_to_num, self.beta)
        classes = self.dataset_meta['classes']
        per_class = {name: {cls: (None if math.isnan(v) else round(float(v) * 100, 2))
                            for cls, v in zip(classes, values)}
                     for name, values in ret.items() if name != 'aAcc'}
        # classes absent from both ground truth and prediction have no IoU (None); mIoU skips them
        self.last_results = dict(metrics={k: round(float(v), 2) for k, v in metrics.items()}, per_class=per_class,
                                 num_images=len(results))
        return metrics


def evaluation_summary(evaluator) -> dict:
    """The last results of the evaluator's PerClassIoUMetric (raises if the config lacks one)."""
    for metric in evaluator.metrics:
        if isinstance(metric, PerClassIoUMetric):
            if metric.last_results is None:
                raise RuntimeError('PerClassIoUMetric has not evaluated anything yet')
            return metric.last_results
    raise TypeError(f'the evaluator has no PerClassIoUMetric (got {[type(m).__name__ for m in evaluator.metrics]}); '
                    "set val_evaluator/test_evaluator = dict(type='PerClassIoUMetric', ...)")


def write_evaluation(runner, evaluator, filename: str, **provenance) -> dict | None:
    """Write the last evaluation (summary + per-class) to ``<work_dir>/<filename>`` on the main process."""
    if not is_main_process():
        return None
    # only a training run has its loop built; runner.iter would build one (indexing the training data)
    iteration = runner.iter if isinstance(runner._train_loop, BaseLoop) else None
    results = dict(evaluation_summary(evaluator), work_dir=runner.work_dir, iteration=iteration, **provenance)
    path = write_results_json(results, osp.join(runner.work_dir, filename))
    runner.logger.info(f'results written to {path}')
    return results
