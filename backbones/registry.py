"""The one registry of the project's models, a child of mmengine's root MODELS.

Its scope is ``bagtricks``, so mmdet and mmseg configs (which build in their own scopes) reach the
backbones as ``type='bagtricks.BagResNet'`` once this package is imported (``custom_imports``).
"""
from __future__ import annotations

from types import FrameType

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import DefaultScope, Registry
from mmengine.registry.build_functions import build_from_cfg


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


def building_scope(frame: FrameType | None, depth: int = 4) -> str | None:
    """Scope of the registry whose ``build_from_cfg`` is constructing an object, else None.

    ``frame`` is the caller of the object's ``__init__``; a few ``__init__`` frames of subclasses are
    skipped. A backbone uses it to take the defaults of the toolbox that builds it: mmdet's registry
    builds a detector's backbone, mmseg's a segmentor's (mmengine's current default scope cannot tell,
    since a Runner leaves its own behind for the rest of the process). Direct construction: None.
    """
    for _ in range(depth):
        if frame is None:
            return None
        if frame.f_code is build_from_cfg.__code__:
            registry = frame.f_locals.get('registry')
            return getattr(registry, 'scope', None)
        if frame.f_code.co_name != '__init__':
            return None
        frame = frame.f_back
    return None


MODELS = Registry('model', parent=MMENGINE_MODELS, scope='bagtricks', build_func=own_scope(MMENGINE_MODELS.build_func))

__all__ = ['MODELS', 'building_scope', 'own_scope']
