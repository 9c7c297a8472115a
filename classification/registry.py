"""Child registries (scope ``bagtricks``) for what classification adds to mmengine.

Models live in the one project registry, :data:`backbones.registry.MODELS`. The registries here are
children of mmengine's root registries (as ``mmpretrain/registry.py`` does), so a config with
``default_scope='bagtricks'`` finds our entries first and everything else (samplers, SGD, LinearLR,
hooks) in mmengine.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

from backbones.registry import MODELS

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='bagtricks')
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='bagtricks')
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='bagtricks')
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='bagtricks')

__all__ = ['MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'PARAM_SCHEDULERS']
