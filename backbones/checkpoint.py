"""Checkpoint reading and key conversion: the one place that decides how a file is unpickled.

* Weights from outside (torchvision, timm, mmdet/mmseg/mmpretrain, an exported backbone, or a
  pretraining checkpoint handed to a transfer tool) go through :func:`load_weights_file`:
  ``torch.load(weights_only=True)``. mmengine checkpoints carry a little bookkeeping (its
  ``HistoryBuffer`` and numpy arrays in the message hub); those few types are allow-listed for the
  restricted unpickler, nothing else is.
* The project's own resume state, read from its own work directory, is the only thing loaded with
  the full unpickler: :func:`load_training_state`, used by the Runner's resume.
"""
from __future__ import annotations

import os
import pickle
import re
from collections import OrderedDict
from typing import Mapping

import torch
from mmengine.logging import print_log

# Globals an mmengine checkpoint needs besides tensors; all are plain data holders.
_MMENGINE_BOOKKEEPING = {
    'mmengine.logging.history_buffer.HistoryBuffer',
    'numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct',
    'numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar',
    'numpy.ndarray', 'numpy.dtype',
}


class CheckpointError(ValueError):
    """A weights file that cannot be read, or that does not fit the model it is loaded into."""


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr``: a HistoryBuffer pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; that lookup, and no other, is resolved."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(obj, name)
    raise CheckpointError(f'refusing to unpickle getattr({obj!r}, {name!r})')


def _safe_globals_for(path: str) -> list:
    import importlib
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except (ValueError, RuntimeError, OSError):
        return []  # not a zip checkpoint: torch.load(weights_only=True) below judges it
    allowed = []
    for name in needed:
        if name == 'builtins.getattr':
            allowed.append((_history_buffer_getattr, name))
            continue
        if name not in _MMENGINE_BOOKKEEPING and not name.startswith('numpy.dtypes.'):
            raise CheckpointError(
                f'{path}: refusing to unpickle {name!r}. Weights files are loaded with '
                f'weights_only=True; expected plain tensors (or an mmengine checkpoint).')
        module, _, attr = name.rpartition('.')
        allowed.append(getattr(importlib.import_module(module), attr))
    if 'numpy.dtype' in needed:  # numpy >= 1.25 builds a dtype through its numeric DType class
        import numpy as np
        allowed += [type(np.dtype(c)) for c in '?bBhHiIlLqQefd']
    return allowed


def load_weights_file(path: str) -> dict:
    """Read a weights file from outside with the restricted unpickler (``weights_only=True``)."""
    if not os.path.isfile(path):
        raise CheckpointError(f'weights file not found: {path}')
    try:
        with torch.serialization.safe_globals(_safe_globals_for(path)):
            obj = torch.load(path, map_location='cpu', weights_only=True)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f'{path}: not a readable torch weights file ({type(e).__name__}: '
                              f'{str(e).splitlines()[0] if str(e) else e!r})') from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{path}: expected a dict of tensors, got {type(obj).__name__}')
    return obj


def load_training_state(path: str) -> dict:
    """Full unpickler for the project's own resume state (optimizer, schedulers, message hub)."""
    return torch.load(path, map_location='cpu', weights_only=False)


def state_dict_of(obj: Mapping) -> dict:
    """The tensors of a checkpoint: unwraps ``state_dict``/``model`` and DDP's ``module.``."""
    for key in ('state_dict', 'model'):
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    state = OrderedDict((k[7:] if k.startswith('module.') else k, v) for k, v in obj.items()
                        if isinstance(v, torch.Tensor))
    if not state:
        raise CheckpointError('checkpoint holds no tensors (expected a state dict)')
    return state


_MMDET_STEM = {'stem.0.': 'conv1.0.', 'stem.1.': 'conv1.1.', 'stem.3.': 'conv1.3.', 'stem.4.': 'conv1.4.',
               'stem.6.': 'conv1.6.', 'stem.7.': 'bn1.'}
_DOWNSAMPLE = re.compile(r'^(layer\d+\.\d+\.downsample)\.(\d+)\.(.+)$')


def _downsample_slots(keys) -> dict[str, list[int]]:
    slots: dict[str, set[int]] = {}
    for k in keys:
        m = _DOWNSAMPLE.match(k)
        if m:
            slots.setdefault(m.group(1), set()).add(int(m.group(2)))
    return {blk: sorted(idx) for blk, idx in slots.items()}


def convert_backbone_state(state: Mapping[str, torch.Tensor],
                           target: Mapping[str, torch.Tensor]) -> dict:
    """Map a torchvision/timm/mmdet/mmseg/mmpretrain/bagtricks ResNet state dict onto our keys.

    ``target`` is our backbone's ``state_dict()`` (only its keys are used to place the downsample
    modules, which sit at index 0 or 1 depending on whether a pool precedes the conv).
    """
    state = dict(state)
    # a whole classifier / detector / segmentor: keep its backbone
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    # torchvision/timm classifier heads are not part of a backbone
    state = {k: v for k, v in state.items() if not k.startswith(('fc.', 'head.'))}
    out = {}
    for k, v in state.items():
        for old, new in _MMDET_STEM.items():
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    src_slots, tgt_slots = _downsample_slots(out), _downsample_slots(target)
    moved = {}
    for k, v in out.items():
        m = _DOWNSAMPLE.match(k)
        if m and m.group(1) in tgt_slots and len(src_slots[m.group(1)]) == len(tgt_slots[m.group(1)]):
            i = src_slots[m.group(1)].index(int(m.group(2)))
            k = f'{m.group(1)}.{tgt_slots[m.group(1)][i]}.{m.group(3)}'
        moved[k] = v
    return moved


def check_fits(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], what: str,
               source: str) -> None:
    """Raise :class:`CheckpointError` listing the first mismatches unless ``state`` fits exactly."""
    missing = [k for k in target if k not in state and not k.endswith('num_batches_tracked')]
    unexpected = [k for k in state if k not in target]
    shapes = [f'{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}'
              for k in target if k in state and state[k].shape != target[k].shape]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (('missing keys', missing), ('unexpected keys', unexpected),
                             ('shape mismatches', shapes)):
            if items:
                parts.append(f'{len(items)} {label} (first: {", ".join(items[:5])})')
        raise CheckpointError(f'{source} does not fit {what}: ' + '; '.join(parts))


def load_backbone_weights(backbone: torch.nn.Module, path: str, prefix: str | None = None) -> int:
    """Load any supported ResNet weights file into ``backbone`` strictly. Returns tensors loaded."""
    state = state_dict_of(load_weights_file(path))
    if prefix:
        p = prefix.rstrip('.') + '.'
        state = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
    target = backbone.state_dict()
    state = convert_backbone_state(state, target)
    what = f'{type(backbone).__name__}(depth={getattr(backbone, "depth", "?")}, ' \
           f'variant={getattr(backbone, "variant", "?")!r})'
    check_fits(state, target, what, path)
    backbone.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
    print_log(f'loaded {len(state)}/{len(target)} backbone tensors from {path}', logger='current')
    return len(state)


def convert_weights_file(src: str, dst: str, backbone: torch.nn.Module) -> int:
    """Convert any supported weights file into a backbone-only file of plain tensors for ``backbone``.

    The result uses BagResNet's own keys, loads with ``weights_only=True`` and is checked to fit
    before it is written; it is written atomically, so a failure leaves no partial file.
    """
    state = convert_backbone_state(state_dict_of(load_weights_file(src)), backbone.state_dict())
    check_fits(state, backbone.state_dict(), f'{type(backbone).__name__}(depth={backbone.depth}, '
               f'variant={backbone.variant!r})', src)
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    tmp = f'{dst}.tmp'
    torch.save({k: v.detach().clone().cpu() for k, v in state.items()}, tmp)
    os.replace(tmp, dst)
    return len(state)
