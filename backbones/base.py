"""What the registry backbones share. :class:`BackboneBase` (BagResNet, Inception-V3, MobileNet): init_cfg
handling with strict loading, frozen stages and norm_eval through ``train()``, the channels-last switch.
:class:`StagedBackbone` (the paper's two non-residual networks) adds BagResNet's interface on top.

A subclass names its modules stage by stage (``stem_names``, ``stage_names``: attribute names, so the
state-dict keys stay those of torchvision / timm) and this base class provides the mmdet/mmseg-style
keywords (``out_indices``, ``frozen_stages``, ``norm_eval``, ``init_cfg``), the paper's Xavier init, the
strict loading of outside weights and the explicit refusal of zero gamma, which needs a residual block.
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class BackboneBase(BaseModule):
    """What every registry backbone does the same way: frozen stages and BN-in-eval-mode (``norm_eval``)
    survive ``train()``, and the channels-last switch (NHWC weights and input, plain NCHW outputs, since some
    consumers such as mmcv's CPU RoIAlign index memory as NCHW). Subclasses set ``frozen_stages``,
    ``norm_eval`` and ``channels_last`` and define ``_freeze_stages``."""

    channels_last = False
    norm_eval = False

    def _freeze_stages(self) -> None:
        raise NotImplementedError

    def _use_channels_last(self, enabled: bool) -> None:
        self.channels_last = bool(enabled)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous() if self.channels_last else x

    def init_weights(self):
        """Random init happens in the constructor. Non-``Pretrained`` entries of ``init_cfg`` run through
        mmengine's initialisers; a ``Pretrained`` entry (dict or inside a list) always loads strictly,
        after them, as mmengine orders it."""
        from .pretrained import split_init_cfg
        pretrained, others = split_init_cfg(self.init_cfg)
        if others:
            full, self.init_cfg = self.init_cfg, others
            try:
                super().init_weights()
            finally:
                self.init_cfg = full
        if pretrained is not None:
            self.load_weights(pretrained['checkpoint'], prefix=pretrained.get('prefix'))
        self._is_init = True

    def load_weights(self, path: str, prefix: str | None = None) -> int:
        """Load an outside weights file strictly (any layout the project converts); returns tensors loaded."""
        from .pretrained import load_pretrained
        return load_pretrained(self, path, prefix=prefix)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


class StagedBackbone(BackboneBase):
    """Base of a backbone built as a stem followed by four stages (output strides 4, 8, 16, 32).

    Subclasses set ``stem_names`` / ``stage_names`` (module paths, e.g. ``'blocks.1'``) / ``feat_channels``
    in their constructor, then call
    :meth:`_finish`. Class attributes:

    * ``inits``: the accepted ``init`` values; 'xavier' is the paper's (Section 2.1), the other one the
      reference implementation's own init (:meth:`_reference_init`).
    * ``head_prefixes``: keys of a whole outside classifier that are not backbone (dropped on load).
    * ``zero_gamma_applies = False``: there is no residual block, so zero gamma (Section 3.1) cannot act;
      ``zero_gamma=True`` is an error, and the trick table prints "n/a for this backbone".
    """

    inits: tuple[str, ...] = ('xavier',)
    head_prefixes: tuple[str, ...] = ()
    zero_gamma_applies = False

    def __init__(self, out_indices: Sequence[int], frozen_stages: int, norm_eval: bool, zero_gamma: bool,
                 init: str, init_cfg: dict | list | None, channels_last: bool = False):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if zero_gamma:
            raise ValueError(f'zero_gamma=True: {name} has no residual block whose last BN could start at 0 '
                             '(the trick is n/a for this backbone); expected zero_gamma=False')
        if not out_indices or list(out_indices) != sorted(set(out_indices)) or not 0 <= out_indices[0] <= out_indices[-1] <= 3:
            raise ValueError(f'out_indices {tuple(out_indices)} must name stages in 0..3, in increasing order')
        if init not in self.inits:
            raise ValueError(f'init must be one of {self.inits}, got {init!r}')
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f'frozen_stages must be in -1..4, got {frozen_stages}')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_gamma = False
        self.init = init
        self._channels_last_wanted = bool(channels_last)
        self.stem_names: tuple[str, ...] = ()
        self.stage_names: tuple[tuple[str, ...], ...] = ()
        self.feat_channels: tuple[int, ...] = ()

    def _finish(self) -> None:
        """Call at the end of the subclass constructor: output width, random init, frozen stages."""
        assert len(self.stage_names) == 4 and len(self.feat_channels) == 4
        self.out_channels = self.feat_channels[-1]
        self._reset_parameters()
        self._freeze_stages()
        self._use_channels_last(self._channels_last_wanted)

    # -- init -----------------------------------------------------------------------------------------
    def _reference_init(self) -> None:
        raise NotImplementedError

    def _reset_parameters(self) -> None:
        if self.init == 'xavier':  # a = sqrt(6 / (d_in + d_out)), biases 0, BN gamma 1 / beta 0
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
                elif isinstance(m, (_BatchNorm, nn.GroupNorm)):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)
        else:
            self._reference_init()

    def load_weights(self, path: str, prefix: str | None = None) -> int:
        """Load a torchvision / timm classifier, a bagtricks checkpoint or an exported backbone, strictly.

        ``path`` may also be an mmengine name (``torchvision://``, ``https://``...) of a file in the local
        cache (:func:`backbones.pretrained.resolve_checkpoint`). The outside classifier's head
        (``head_prefixes``) is dropped; anything else that does not fit is an error listing the first
        mismatching keys. Returns the number of tensors loaded.
        """
        from safe_read import load_weights_file

        from .checkpoint import check_fits, state_dict_of
        from .pretrained import resolve_checkpoint
        path = resolve_checkpoint(path)
        state = state_dict_of(load_weights_file(path))
        if prefix:
            p = prefix.rstrip('.') + '.'
            state = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        if any(k.startswith('backbone.') for k in state):  # a whole bagtricks classifier
            state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
        state = {k: v for k, v in state.items() if not k.startswith(self.head_prefixes)}
        target = self.state_dict()
        check_fits(state, target, type(self).__name__, path)
        self.load_state_dict(state, strict=False)  # only num_batches_tracked may be absent
        print_log(f'loaded {len(state)}/{len(target)} backbone tensors from {path}', logger='current')
        return len(state)

    # -- stages ---------------------------------------------------------------------------------------
    def _freeze_stages(self) -> None:
        frozen = []
        if self.frozen_stages >= 0:
            frozen += self.stem_names
        for names in self.stage_names[:max(self.frozen_stages, 0)]:
            frozen += names
        for name in frozen:
            m = self.get_submodule(name)
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self._input(x)
        for name in self.stem_names:
            x = self.get_submodule(name)(x)
        outs = []
        for i, names in enumerate(self.stage_names):
            for name in names:
                x = self.get_submodule(name)(x)
            if i in self.out_indices:
                outs.append(self._output(x))
        return tuple(outs)
