"""The one registry of the project's models, a child of mmengine's root MODELS.

Its scope is ``bagtricks``, so mmdet and mmseg configs (which build in their own scopes) reach the
backbones as ``type='bagtricks.BagResNet'`` once this package is imported (``custom_imports``).
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='bagtricks')
