"""Top-k accuracy (percent) for mmengine's evaluator."""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.evaluator import BaseMetric

from .registry import METRICS


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Reports ``accuracy/top1``, ``accuracy/top5``, ... over the whole split (all ranks); keeps them and
    each class's top-1 in ``last_results`` for the ResultsHook."""
    default_prefix = 'accuracy'
    results_task = 'cls'
    last_results: dict | None = None

    def __init__(self, topk: Sequence[int] = (1, 5), collect_device: str = 'cpu', prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = tuple(int(k) for k in topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'topk must be positive integers, got {topk}')

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            scores = sample['pred_score']
            if max(self.topk) > scores.numel():
                raise ValueError(f'top-{max(self.topk)} accuracy needs at least {max(self.topk)} classes, the model '
                                 f'predicts {scores.numel()}; set val_evaluator.topk (e.g. (1,))')
            top = scores.topk(max(self.topk)).indices.cpu()
            self.results.append((top, sample['gt_label']))

    def compute_metrics(self, results: list) -> dict:
        top = torch.stack([r[0] for r in results])
        labels = torch.tensor([r[1] for r in results]).view(-1, 1)
        hits = top == labels
        metrics = {f'top{k}': 100.0 * hits[:, :k].any(dim=1).double().mean().item() for k in self.topk}
        classes = (self.dataset_meta or {}).get('classes')
        per_class = None
        if classes:
            top1 = hits[:, 0].double()
            per_class = {'top1': {name: (100.0 * top1[labels[:, 0] == i].mean().item()
                                         if (labels[:, 0] == i).any() else None)  # no image of that class
                                  for i, name in enumerate(classes)}}
        self.last_results = dict(metrics=metrics, per_class=per_class, num_images=len(results))
        return metrics
