"""The one registry of the project's models, a child of mmengine's root MODELS.

Its scope is ``bagtricks``, so mmdet and mmseg configs (which build in their own scopes) reach the
backbones as ``type='bagtricks.BagResNet'`` once this package is imported (``custom_imports``).
"""
from __future__ import annotations

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope, Registry


def own_scope(build_func):
    """Wrap a registry's build function so that building from it always resolves in its own scope.

    mmengine resolves a build in the *current* default scope, which any Runner created in the process
    leaves behind (an mmdet Runner leaves 'mmdet'); without this, building a bagtricks model after it
    would look in mmdet's registry.
    """
    def build(cfg, registry, *args, **kwargs):
        with DefaultScope.overwrite_default_scope(registry.scope):
            return build_func(cfg, registry, *args, **kwargs)
    return build


MODELS = Registry('model', parent=MMENGINE_MODELS, scope='bagtricks', build_func=own_scope(MMENGINE_MODELS.build_func))

__all__ = ['MODELS', 'own_scope']
