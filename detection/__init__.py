"""Glue between mmdet and the project: what mmdet lacks to run Table 7 (Faster R-CNN on VOC).

Importing this package (configs do it through ``custom_imports``) registers, in mmdet's scope:
``StrictVOCDataset`` (layout errors by path) and ``VOCPerClassMetric`` (VOCMetric + per-class AP kept
for the results file that engine's ResultsHook writes). The backbone is ``bagtricks.BagResNet``.
"""
from .datasets import StrictVOCDataset, VOCLayoutError
from .metrics import EVAL_MODES, VOCPerClassMetric, set_eval_mode

__all__ = ['StrictVOCDataset', 'VOCLayoutError', 'VOCPerClassMetric', 'EVAL_MODES', 'set_eval_mode']
