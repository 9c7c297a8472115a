"""Glue between mmdet and the project: what mmdet lacks to run Table 7 (Faster R-CNN on VOC).

Importing this package (configs do it through ``custom_imports``) registers, in mmdet's scope:
``StrictVOCDataset`` (layout errors by path), ``VOCPerClassMetric`` (VOCMetric + per-class AP kept)
and ``DetResultsHook`` (the JSON result file). The backbone is ``bagtricks.BagResNet``.
"""
from .datasets import StrictVOCDataset, VOCLayoutError
from .hooks import DetResultsHook
from .metrics import EVAL_MODES, VOCPerClassMetric, set_eval_mode

__all__ = ['StrictVOCDataset', 'VOCLayoutError', 'VOCPerClassMetric', 'DetResultsHook', 'EVAL_MODES', 'set_eval_mode']
