"""Mixed precision as one switch, ``amp_dtype``, chosen by what the training device computes natively.

``optim_wrapper = dict(type='MixedPrecisionOptimWrapper', amp_dtype='auto')`` (what the shipped efficient
configs and ``--amp`` use); ``amp_dtype`` is one of

* ``'auto'``: on CUDA fp16 with dynamic loss scaling (the paper's setting); on a CPU bf16 autocast where
  the CPU has bf16 instructions, fp32 elsewhere (emulated bf16 measured 0.52x fp32). The rule is
  :func:`device_caps.amp_choice`, shared with the trick table and the benchmarks.
* ``'fp16'``: fp16 autocast + dynamic loss scaling (``torch.amp.GradScaler``), on CUDA or on a CPU, where it
  runs the CUDA code path (scaling, skipped steps on overflow, the scaler in the checkpoint) without a GPU.
* ``'bf16'``: bf16 autocast, no loss scaling (bf16 has fp32's exponent range).
* ``'fp32'``: no autocast; the same as a plain ``OptimWrapper``.

A forced dtype the device does not compute natively runs, with a warning line. The choice and its reason
are logged when the Runner builds the wrapper (before the first iteration).

:class:`MixedPrecisionOptimWrapper` is mmengine's ``AmpOptimWrapper`` (its ``backward`` / ``step`` through
the loss scaler, its ``state_dict`` with ``loss_scaler``) with the device and dtype chosen here: mmengine's
constructor refuses a machine without an accelerator, so it is bypassed and its few lines redone for a
scaler on either device (disabled unless fp16).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.logging import MMLogger, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from device_caps import TORCH_DTYPES, amp_choice, describe, native, training_device


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """Args:
        amp_dtype: 'auto' | 'fp16' | 'bf16' | 'fp32' (see the module's docstring).
        loss_scale: as mmengine's AmpOptimWrapper: 'dynamic', a float (static scale) or a dict of
            ``GradScaler`` arguments; used with fp16 only.
        device: 'cuda' or 'cpu' (default: the device the Runner trains on).
        **kwargs: OptimWrapper's (optimizer, accumulative_counts, clip_grad).
    """

    def __init__(self, amp_dtype: str = 'auto', loss_scale='dynamic', device: str | None = None, **kwargs):
        OptimWrapper.__init__(self, **kwargs)  # not AmpOptimWrapper.__init__: it asserts an accelerator
        self.device_type = device or training_device()
        self.amp_dtype, self.amp_reason = amp_choice(amp_dtype, self.device_type)
        self.cast_dtype = None if self.amp_dtype == 'fp32' else TORCH_DTYPES[self.amp_dtype]
        self._scale_update_param = None
        scaling = dict(enabled=self.amp_dtype == 'fp16')
        if loss_scale == 'dynamic':
            pass
        elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
            self._scale_update_param = float(loss_scale)  # static: update() keeps it
            scaling['init_scale'] = float(loss_scale)
        elif isinstance(loss_scale, dict):
            scaling.update(loss_scale)
        else:
            raise TypeError(f"loss_scale must be 'dynamic', a float or a dict, got {loss_scale!r}")
        self.loss_scaler = torch.amp.GradScaler(self.device_type, **scaling)
        logger = MMLogger.get_current_instance()
        logger.info(f'mixed precision: {describe(self.amp_dtype)} ({self.amp_reason})')
        if not native(self.amp_dtype, self.device_type)[0]:
            logger.warning(f'mixed precision: {self.amp_dtype} is not native on this {self.device_type}, as forced by '
                           f'amp_dtype={amp_dtype}; it may run slower than fp32 (amp_dtype=auto picks by capability)')

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        """OptimWrapper's context (no gradient sync while accumulating) with autocast to the chosen dtype."""
        with OptimWrapper.optim_context(self, model):
            if self.cast_dtype is None:
                yield
            else:
                # as mmengine's AmpOptimWrapper: no weight-cast cache
                with torch.autocast(device_type=self.device_type, dtype=self.cast_dtype, cache_enabled=False):
                    yield

    def state_dict(self) -> dict:
        """The optimizer's state, plus ``loss_scaler`` (mmengine's key) when fp16 loss scaling is on."""
        state = OptimWrapper.state_dict(self)
        if self.loss_scaler.is_enabled():
            state['loss_scaler'] = self.loss_scaler.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """mmengine's, also across precisions: a checkpoint without scaler state starts a fresh scale, a
        checkpoint's scaler state is ignored by a run that does not scale (both with a log line)."""
        state_dict = dict(state_dict)
        saved = state_dict.pop('loss_scaler', None)
        if self.loss_scaler.is_enabled() and saved:
            self.loss_scaler.load_state_dict(saved)
        elif self.loss_scaler.is_enabled():
            print_log('the checkpoint holds no loss-scaler state (not trained with fp16 loss scaling): the scale '
                      f'starts at {self.loss_scaler.get_scale():g}', logger='current')
        elif saved:
            print_log(f'the checkpoint\'s loss-scaler state is not used: this run trains in {self.amp_dtype}',
                      logger='current')
        AmpOptimWrapper.load_state_dict(self, state_dict)
