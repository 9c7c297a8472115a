"""mmseg's IoUMetric, keeping its per-class figures (it only logs them) for the results file."""
from __future__ import annotations

import math

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class PerClassIoUMetric(IoUMetric):
    """IoUMetric (aAcc, mIoU, mAcc and the per-class table in the log) that also keeps the last
    evaluation's numbers, unrounded and in percent, in ``last_results`` for the ResultsHook."""

    results_task = 'seg'
    last_results: dict | None = None

    def compute_metrics(self, results: list) -> dict:
        metrics = super().compute_metrics(results)
        if self.format_only:
            return metrics
        totals = [sum(parts) for parts in zip(*results)]
        ret = {k: np.asarray(v, dtype=np.float64) for k, v in
               self.total_area_to_metrics(*totals, self.metrics, self.nan_to_num, self.beta).items()}
        classes = self.dataset_meta['classes']
        # classes absent from both ground truth and prediction have no IoU (None); the means skip them
        per_class = {name: {cls: (None if math.isnan(v) else 100 * float(v)) for cls, v in zip(classes, values)}
                     for name, values in ret.items() if name != 'aAcc'}
        summary = {'pixAcc': 100 * float(ret['aAcc']),
                   **{f'm{name}': 100 * float(np.nanmean(values)) for name, values in ret.items() if name != 'aAcc'}}
        self.last_results = dict(metrics=summary, per_class=per_class, num_images=len(results))
        return metrics
