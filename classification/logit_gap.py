"""The logit gap of the paper's Figure 4: how far the largest logit stands above the others.

With label smoothing (eq. 4, eps spread over the K - 1 wrong classes as in the paper) the optimal logits
are ``z_correct = log((K - 1)(1 - eps) / eps) + a`` and ``z_other = a``, so the gap between the top logit
and the rest has a finite optimum; with one-hot targets (eps = 0) it is unbounded. Figure 4 compares that
value with the empirical gap on the validation set (``tools/plot_logit_gap.py``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from mmengine.evaluator import BaseMetric

from .registry import METRICS


def logit_gap(logits: torch.Tensor) -> torch.Tensor:
    """Per row of an (N, K) logits tensor: the largest logit minus the mean of the other K - 1 logits."""
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f'logits must be (N, K) with K >= 2 classes, got shape {tuple(logits.shape)}')
    logits = logits.double()
    top = logits.max(dim=1).values
    # remove one copy of the maximum: a tie keeps the other copy among "the others"
    rest_mean = (logits.sum(dim=1) - top) / (logits.shape[1] - 1)
    return top - rest_mean


def theoretical_gap(eps: float, num_classes: int) -> float:
    """``log((K - 1)(1 - eps) / eps)``: the gap at the optimum of the smoothed cross entropy; inf for eps = 0."""
    if num_classes < 2:
        raise ValueError(f'num_classes must be >= 2, got {num_classes}')
    if not 0.0 <= eps < 1.0:
        raise ValueError(f'label smoothing eps must be in [0, 1), got {eps}')
    if eps == 0.0:
        return math.inf
    return math.log((num_classes - 1) * (1.0 - eps) / eps)


@METRICS.register_module()
class LogitGap(BaseMetric):
    """``logit_gap/mean`` and ``logit_gap/std`` (sample std) over the split, all ranks; the per-image gaps of
    the last evaluation stay in :attr:`gaps` (dataset order) for the histogram."""
    default_prefix = 'logit_gap'

    def __init__(self, collect_device: str = 'cpu', prefix: str | None = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.gaps: torch.Tensor | None = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        scores = torch.stack([sample['pred_score'].detach().float().cpu() for sample in data_samples])
        self.results.extend(logit_gap(scores).tolist())

    def compute_metrics(self, results: list) -> dict:
        self.gaps = torch.tensor(results, dtype=torch.float64)
        std = self.gaps.std().item() if len(results) > 1 else 0.0
        return dict(mean=self.gaps.mean().item(), std=std)
