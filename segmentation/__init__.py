"""Glue between mmseg and the project: only what mmseg lacks (layout checks, per-class results).

Importing this package (``custom_imports`` in configs/seg/) registers into mmseg's registries:
``CheckedADE20KDataset``, the ``CheckSegMap`` pipeline step and ``PerClassIoUMetric``.
"""
from .datasets import ADEFormatDataset, CheckedADE20KDataset, SegLayoutError
from .metrics import PerClassIoUMetric
from .transforms import CheckSegMap

__all__ = ['ADEFormatDataset', 'CheckedADE20KDataset', 'CheckSegMap', 'PerClassIoUMetric', 'SegLayoutError']
