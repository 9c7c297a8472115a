"""Child registries (scope ``bagtricks``) for what classification adds to mmengine.

Models live in the one project registry, :data:`backbones.registry.MODELS`. The registries here are
children of mmengine's root registries (as ``mmpretrain/registry.py`` does), so a config with
``default_scope='bagtricks'`` finds our entries first and everything else (samplers, SGD, LinearLR,
hooks) in mmengine.
"""
from mmengine import registry as mmengine_registry
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

from backbones.registry import MODELS, own_scope

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='bagtricks',
                    build_func=own_scope(MMENGINE_DATASETS.build_func))
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='bagtricks',
                    build_func=own_scope(MMENGINE_TRANSFORMS.build_func))
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='bagtricks',
                    build_func=own_scope(MMENGINE_METRICS.build_func))
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='bagtricks',
                    build_func=own_scope(MMENGINE_PARAM_SCHEDULERS.build_func))

# Empty children for the engine parts we only use, so building them in the 'bagtricks' scope resolves
# through the parent instead of warning "Failed to search registry with scope bagtricks".
_PASS_THROUGH = {name: Registry(getattr(mmengine_registry, name).name, parent=getattr(mmengine_registry, name),
                                scope='bagtricks')
                 for name in ('DATA_SAMPLERS', 'HOOKS', 'LOOPS', 'LOG_PROCESSORS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
                              'OPTIM_WRAPPER_CONSTRUCTORS', 'VISBACKENDS', 'VISUALIZERS', 'EVALUATOR',
                              'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'FUNCTIONS')}

__all__ = ['MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'PARAM_SCHEDULERS']
