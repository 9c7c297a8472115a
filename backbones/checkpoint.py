"""Checkpoint contents: key conversion and the strict fit of a state dict to a model.

Every file is read by the reading layer (:mod:`safe_read`: the restricted unpickler, its exact allow-list
and limits); this module judges what was read:

* :func:`check_model_fits`: a whole-model checkpoint against the model a tool built (strict keys and
  shapes, then floating-point, finite values: :func:`safe_read.check_weight_values`).
* :func:`check_fits`: the same for any state dict (backbone weights, a teacher).
* :func:`convert_backbone_state`: torchvision/timm/mmdet/mmseg/mmpretrain ResNet keys onto ours.

The config text in ``meta['cfg']`` is never executed; :func:`backbone_cfg_from_meta` reads the
backbone's arguments from it as literal data (:func:`safe_read.parse_config_text`, depth-limited).
"""
from __future__ import annotations

import ast
import os
import re
from collections import OrderedDict
from typing import Mapping

import torch
from mmengine.logging import print_log

import safe_write
from safe_read import check_weight_values, literal_value, load_weights_file, parse_config_text
from user_errors import CheckpointError, ConfigError

def backbone_cfg_from_meta(checkpoint: Mapping, source: str) -> dict:
    """``model.backbone`` of the config text a training checkpoint stores in ``meta['cfg']``, parsed as
    data with :mod:`ast` (the text is never executed; anything but literals and ``dict()`` is refused)."""
    text = (checkpoint.get('meta') or {}).get('cfg') if isinstance(checkpoint.get('meta'), Mapping) else None
    if not isinstance(text, str) or not text.strip():
        raise CheckpointError(f'{source} stores no config; pass --config to check the backbone against')
    tree = parse_config_text(text, source)
    try:
        model = next(n.value for n in tree.body if isinstance(n, ast.Assign) and len(n.targets) == 1
                     and isinstance(n.targets[0], ast.Name) and n.targets[0].id == 'model')
        fields = ({k.arg: k.value for k in model.keywords} if isinstance(model, ast.Call) else
                  {getattr(k, 'value', None): v for k, v in zip(model.keys, model.values)}
                  if isinstance(model, ast.Dict) else {})
        backbone = literal_value(fields['backbone'])
    except (StopIteration, KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f'{source}: cannot read model.backbone from the config stored in the checkpoint as '
                              f'plain data ({type(e).__name__}: {e}); pass --config') from None
    if not isinstance(backbone, dict) or 'type' not in backbone:
        raise CheckpointError(f'{source}: the stored config\'s model.backbone is not a dict with a type; pass --config')
    return backbone


def _prefixes(keys) -> list[str]:
    return sorted({k.split('.', 1)[0] for k in keys})


def describe_state(keys) -> str:
    """What kind of model a state dict belongs to, from its top-level key prefixes."""
    keys = list(keys)
    top = _prefixes(keys)
    kind = ('a detector' if {'rpn_head', 'roi_head', 'bbox_head'} & set(top) else
            'a segmentor' if 'decode_head' in top else
            'a classifier' if 'backbone' in top and 'head' in top else
            'a backbone only' if 'conv1.weight' in keys or 'conv1.0.weight' in keys or 'stem.0.weight' in keys else
            'an unknown model')
    return f'{kind} ({", ".join(p + ".*" for p in top[:6])}{", ..." if len(top) > 6 else ""})'


def describe_model(model: torch.nn.Module) -> str:
    backbone = getattr(model, 'backbone', None)
    parts = []
    if backbone is not None and hasattr(backbone, 'depth'):
        parts.append(f'{type(backbone).__name__} depth={backbone.depth} variant={getattr(backbone, "variant", "?")!r}')
    classes = getattr(model, 'num_classes', None) or getattr(getattr(model, 'decode_head', None), 'num_classes', None)
    if classes:
        parts.append(f'{classes} classes')
    return f'{type(model).__name__}({", ".join(parts)})'


def check_model_fits(model: torch.nn.Module, checkpoint: Mapping, source: str) -> dict:
    """Raise :class:`CheckpointError` unless the checkpoint's state dict fits ``model`` exactly (keys and
    shapes: architecture, variant, task and class count), with floating-point, finite values where the
    model's are. Returns the state dict (``module.`` removed)."""
    state = state_dict_of(checkpoint)
    target = model.state_dict()
    try:
        check_fits(state, target, describe_model(model), source, values=False)
    except CheckpointError as e:
        hint = f'; the file holds {describe_state(state)}'
        try:
            trained = backbone_cfg_from_meta(checkpoint, source)
            hint += f', trained with backbone depth={trained.get("depth")} variant={trained.get("variant")!r}'
        except CheckpointError:
            pass
        raise CheckpointError(f'{e}{hint}') from None
    check_weight_values(state, target, source)
    return state


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
               source: str, values: bool = True) -> None:
    """Raise :class:`CheckpointError` listing the first mismatches unless ``state`` fits exactly (keys and
    shapes), then unless its values are floating point and finite where the model's are."""
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
    if values:
        check_weight_values(state, target, source)


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


WEIGHT_FORMATS = ('pth', 'safetensors')
"""How a backbone file is written: torch.save (loads with ``weights_only=True``) or safetensors (no pickle)."""


def check_weights_destination(dst: str, src: str | None = None, fmt: str = 'pth') -> None:
    """Before any work: ``dst`` can be written by the writing layer (absent or its own, no link or device),
    is not the input ``src``, and its extension does not contradict ``fmt`` (a ``.safetensors`` name holds
    safetensors, a ``.pth``/``.pt`` name torch.save's format)."""
    if fmt not in WEIGHT_FORMATS:
        raise ConfigError(f'--format {fmt}: expected one of {", ".join(WEIGHT_FORMATS)}')
    ext = os.path.splitext(dst)[1].lower()
    if ext in ('.safetensors', '.pth', '.pt') and (ext == '.safetensors') != (fmt == 'safetensors'):
        want = 'safetensors' if ext == '.safetensors' else 'pth'
        raise ConfigError(f'output {dst}: a {ext} name for --format {fmt}; pass --format {want}, or name the file '
                          f'{os.path.splitext(dst)[0]}{".safetensors" if fmt == "safetensors" else ".pth"}')
    safe_write.check_output(dst, 'output', input_files=[src] if src else ())


def save_tensors_atomically(state: Mapping[str, torch.Tensor], dst: str, fmt: str = 'pth') -> None:
    """Save plain tensors through the writing layer (temporary file, then rename) with torch.save
    (``fmt='pth'``) or ``safetensors.torch.save_file`` (``fmt='safetensors'``, contiguous copies, metadata
    ``format=pt`` as the hub's files have); on any failure (a full disk) ``dst`` is untouched and no
    temporary file is left."""
    if fmt == 'safetensors':
        from safetensors import SafetensorError
        from safetensors.torch import save_file
        plain = {k: v.contiguous() for k, v in state.items()}
        write, errors = (lambda tmp: save_file(plain, tmp, metadata={'format': 'pt'})), (SafetensorError, ValueError)
    else:
        write, errors = (lambda tmp: torch.save(dict(state), tmp)), ()
    try:
        safe_write.write_with(dst, write, what='output')
    except (OSError, RuntimeError, *errors) as e:
        raise CheckpointError(f'could not write {dst} ({one_line_reason(e)}); nothing was written') from e


def one_line_reason(e: BaseException) -> str:
    text = ' '.join(str(e).split())
    if isinstance(e, OSError) and e.errno in (28, 27):  # ENOSPC, EFBIG
        return f'{e.strerror}: the disk is full or the file size limit was reached'
    if 'file write failed' in text or 'failed writing' in text:
        return f'write failed, disk full or file size limit reached ({text[:160]})'
    return text[:200] or type(e).__name__


def convert_weights_file(src: str, dst: str, backbone: torch.nn.Module, fmt: str = 'pth',
                         checkpoint: Mapping | None = None) -> int:
    """Convert any supported weights file into a backbone-only file of plain tensors for ``backbone``.

    The result uses BagResNet's own keys, loads with ``weights_only=True`` and is checked to fit
    before it is written; it is written atomically, so a failure leaves no partial file. ``dst`` may
    not be a directory, ``src`` itself, or an existing file that is not such a backbone file. ``fmt``:
    :data:`WEIGHT_FORMATS` (``safetensors`` loads back through the same loaders, with no pickle).
    ``checkpoint``: ``src`` as already read (e.g. with its EMA or raw weights chosen, engine/ema.py); read
    from ``src`` when None.
    """
    check_weights_destination(dst, src, fmt)
    checkpoint = load_weights_file(src) if checkpoint is None else checkpoint
    state = convert_backbone_state(state_dict_of(checkpoint), backbone.state_dict())
    check_fits(state, backbone.state_dict(), f'{type(backbone).__name__}(depth={getattr(backbone, "depth", "?")}, '
               f'variant={getattr(backbone, "variant", "?")!r})', src)  # Inception/MobileNet have neither
    save_tensors_atomically({k: v.detach().clone().cpu() for k, v in state.items()}, dst, fmt)
    return len(state)
