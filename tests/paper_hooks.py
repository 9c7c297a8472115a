"""A hook for the paper-scale smoke tests, imported by the tool under test through ``custom_imports``:
it records what the backbone really receives (batch shape and dtype after the data preprocessor, the
dtype its first convolution computes in, whether autocast is on) in every training and validation
iteration, and writes the records to a JSON file the test reads back."""
from __future__ import annotations

import json
import os

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _first_conv(module: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))


@HOOKS.register_module()
class RecordBackboneInputs(Hook):
    """Append ``{phase, iter, net, shape, dtype, autocast, conv_dtype, channels_last}`` per backbone call
    to ``out``.

    ``net`` is 'model' for the trained network and 'teacher' for a distillation teacher (if any)."""

    priority = 'VERY_LOW'

    def __init__(self, out: str):
        self.out = out
        self.records: list[dict] = []
        self.phase = 'init'
        self.iter = -1

    def before_run(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        nets = [('model', model.backbone)]
        teacher = getattr(model, 'teacher', None)
        if teacher is not None:
            nets.append(('teacher', teacher.backbone))
        for name, backbone in nets:
            backbone.register_forward_pre_hook(self._input_hook(name))
            _first_conv(backbone).register_forward_hook(self._conv_hook(name))

    def _input_hook(self, name):
        def hook(module, args):
            x = args[0]
            self.records.append(dict(phase=self.phase, iter=self.iter, net=name, shape=list(x.shape),
                                     dtype=str(x.dtype).replace('torch.', ''),
                                     autocast=torch.is_autocast_enabled(x.device.type)))
        return hook

    def _conv_hook(self, name):
        def hook(module, args, output):
            rec = next(r for r in reversed(self.records) if r['net'] == name)
            rec['conv_dtype'] = str(output.dtype).replace('torch.', '')
            # the memory format the convolutions run in (a backbone may convert its input itself)
            rec['channels_last'] = output.is_contiguous(memory_format=torch.channels_last) and \
                not output.is_contiguous()
        return hook

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.phase, self.iter = 'train', runner.iter + 1

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.phase, self.iter = 'val', batch_idx

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._write()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write()

    def after_run(self, runner) -> None:
        self._write()

    def _write(self) -> None:
        tmp = f'{self.out}.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.records, f)
        os.replace(tmp, self.out)
