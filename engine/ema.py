"""EMA of weights: :class:`BagEMAHook` (mmengine's EMAHook, updated once per optimizer step) and the choice between
the averaged and the raw weights of a checkpoint it saved (:func:`select_weights`, the tools' ``--weights``).

Config switch (configs/cls/resnet50d_tricks_ema.py)::

    custom_hooks = [..., dict(type='BagEMAHook', ema_type='MomentumAnnealingEMA', momentum=1e-4, gamma=10,
                              update_buffers=True, priority='ABOVE_NORMAL')]

A ``type='EMAHook'`` config is built as BagEMAHook by BagRunner (the same arguments), as a CheckpointHook config
is built as BagCheckpointHook.

* Once per optimizer step. mmengine's EMAHook updates after every iteration. With gradient accumulation
  (``optim_wrapper.accumulative_counts = N``) the weights change only every N-th iteration, so the average
  would take each optimizer step N times, and the momentum (and MomentumAnnealingEMA's annealing, counted in
  updates) would mean something else for every N. Here the update runs only in the iterations in which the
  optimizer stepped (``optim_wrapper.should_update()`` after ``update_params``): the EMA of a run with
  accumulation N x batch B equals that of the run with batch N x B. Without accumulation it is mmengine's hook.
* BatchNorm: ``update_buffers=True`` averages the running mean/var with the weights' momentum, so the EMA
  model's statistics come from the same window of training as its weights (docs/ema_and_accumulation.md).
* What a checkpoint holds (mmengine's ``before_save_checkpoint``, unchanged): ``state_dict`` = the EMA weights
  (and, with ``update_buffers=True``, the averaged BN statistics): the file deploys and exports as it is;
  ``ema_state_dict`` = ``steps`` + ``module.<key>`` = the *raw* (trained) weights. ``--resume`` swaps them back
  (``after_load_checkpoint``), so training continues from the raw weights with the EMA restored.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import torch
from mmengine.hooks import EMAHook
from mmengine.registry import HOOKS

from user_errors import CheckpointError, ConfigError

WEIGHTS = ('ema', 'raw')


@HOOKS.register_module()
class BagEMAHook(EMAHook):
    """mmengine's EMAHook (same arguments, same checkpoint layout), updated only after an optimizer step."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        wrapper = runner.optim_wrapper
        # after update_params: True exactly in the iterations whose backward ended an accumulation window
        stepped = getattr(wrapper, 'should_update', None)
        if stepped is None or stepped():
            super().after_train_iter(runner, batch_idx, data_batch, outputs)


def has_ema(checkpoint: Mapping) -> bool:
    return isinstance(checkpoint.get('ema_state_dict'), Mapping)


def raw_state(checkpoint: Mapping) -> OrderedDict:
    """The raw weights of a checkpoint saved with (Bag)EMAHook: its ``ema_state_dict``'s ``module.*`` tensors."""
    return OrderedDict((k[len('module.'):], v) for k, v in checkpoint['ema_state_dict'].items()
                       if k.startswith('module.') and isinstance(v, torch.Tensor))


def select_weights(checkpoint: Mapping, weights: str | None, source: str) -> tuple[dict, str]:
    """``(checkpoint', which)``: ``checkpoint'['state_dict']`` holds the chosen weights, ``which`` is 'ema' or 'raw'.

    ``weights``: 'ema', 'raw' or None (the default: 'ema' where the checkpoint has an ``ema_state_dict``, else
    'raw'). 'ema' on a checkpoint without EMA weights is a :class:`CheckpointError`. The checkpoint itself is not
    changed; the result has no ``ema_state_dict`` (so nothing downstream swaps the weights again).
    """
    if weights not in (None, *WEIGHTS):
        raise ConfigError(f"load_weights = {weights!r}: expected 'ema', 'raw' or None (ema where the checkpoint has "
                          'EMA weights, else raw)')
    ema = has_ema(checkpoint)
    which = weights or ('ema' if ema else 'raw')
    if which == 'ema' and not ema:
        raise CheckpointError(f'--weights ema: {source} holds no EMA weights (no ema_state_dict: it was not trained '
                              'with EMAHook); use --weights raw')
    chosen = {k: v for k, v in checkpoint.items() if k != 'ema_state_dict'}
    if which == 'raw' and ema:
        state = raw_state(checkpoint)
        if not state:
            raise CheckpointError(f'--weights raw: the ema_state_dict of {source} holds no module.* tensors')
        chosen['state_dict'] = state
    return chosen, which
