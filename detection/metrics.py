"""mmdet's VOCMetric, keeping the per-class AP table it logs (it returns only the mean)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from mmengine.logging import MMLogger
from mmdet.evaluation import VOCMetric
from mmdet.evaluation.functional import eval_map
from mmdet.registry import METRICS

EVAL_MODES = ('11points', 'area')


def set_eval_mode(cfg, mode: str | None) -> None:
    """Apply a command line's ``--eval-mode`` to the config's val and test evaluators."""
    if mode is None:
        return
    if mode not in EVAL_MODES:
        raise ValueError(f'eval mode must be one of {EVAL_MODES}, got {mode!r}')
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key):
            cfg[key].eval_mode = mode


@METRICS.register_module()
class VOCPerClassMetric(VOCMetric):
    """``VOCMetric`` (same arguments, same returned keys: ``mAP``, ``AP50``, ...) whose mAP branch
    also keeps, per IoU threshold, each class's AP, ground-truth and detection counts and final
    recall, in ``self.last_results`` (in percent, for the ResultsHook).

    ``eval_mode='11points'`` is VOC07's metric (the paper's); ``'area'`` the VOC2010+ one.
    """

    results_task = 'det'
    last_results: dict | None = None

    def compute_metrics(self, results: list) -> dict:
        if self.metric != 'mAP':
            return super().compute_metrics(results)
        logger = MMLogger.get_current_instance()
        gts, preds = zip(*results)
        classes = list(self.dataset_meta['classes'])
        metrics, per_class, mean_aps = OrderedDict(), {}, []
        for iou_thr in self.iou_thrs:
            logger.info(f'\nper-class AP, IoU {iou_thr}, {self.eval_mode} ({len(results)} images)')
            # mmdet's own evaluation (VOC devkit: legacy +1 pixel widths); it logs the table
            mean_ap, rows = eval_map(preds, gts, scale_ranges=self.scale_ranges, iou_thr=iou_thr,
                                     dataset=classes, logger=logger, eval_mode=self.eval_mode,
                                     use_legacy_coordinate=True)
            key = f'AP{int(iou_thr * 100):02d}'
            metrics[key] = round(mean_ap, 3)
            mean_aps.append(mean_ap)
            per_class[key] = {
                name: dict(ap=100 * float(row['ap']), num_gts=int(row['num_gts']), num_dets=int(row['num_dets']),
                           recall=100 * float(np.asarray(row['recall'])[..., -1]) if np.size(row['recall']) else 0.0)
                for name, row in zip(classes, rows)}
        metrics['mAP'] = sum(mean_aps) / len(mean_aps)
        metrics.move_to_end('mAP', last=False)
        # the results file: unrounded, in percent like the other tasks' metrics
        summary = {'mAP': 100 * metrics['mAP'], **{f'AP{int(t * 100):02d}': 100 * ap
                                                   for t, ap in zip(self.iou_thrs, mean_aps)}}
        self.last_results = dict(metrics=summary, per_class=per_class, num_images=len(results),
                                 eval_mode=self.eval_mode, iou_thrs=list(self.iou_thrs))
        return metrics
