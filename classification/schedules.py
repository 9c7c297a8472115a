"""Learning-rate schedule pieces mmengine lacks, and a replay of a config's schedule without training.

The paper's warmup (Section 3.1) is lr_i = i * eta / m for batches i = 1..m: the first batch already
uses eta / m and batch m uses eta. mmengine's LinearLR reaches ``end_factor`` on its last step, so
``start_factor = 1 / m`` gives exactly that line; m is only known once the epoch length is, hence
this subclass that derives it from ``begin``/``end`` after ``convert_to_iter_based``.
"""
from __future__ import annotations

import copy

import torch
from mmengine.config import Config
from mmengine.optim.scheduler import LinearLR
from mmengine.optim.scheduler.param_scheduler import INF

from .registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class LinearWarmupLR(LinearLR):
    """Linear warmup from 0 over ``end - begin`` steps (iterations with ``convert_to_iter_based=True``)."""

    def __init__(self, optimizer, begin: int = 0, end: int = INF, **kwargs):
        if end == INF:
            raise ValueError('LinearWarmupLR needs end = the last warmup epoch (or iteration)')
        if end <= begin:  # e.g. a fractional-epoch warmup that rounds to no iteration on a tiny dataset
            raise ValueError(f'LinearWarmupLR: the warmup covers no step (begin {begin}, end {end} after conversion '
                             'to iterations); lengthen the warmup or the epoch, or drop the warmup scheduler')
        if {'start_factor', 'end_factor'} & set(kwargs):
            raise ValueError('LinearWarmupLR sets start_factor = 1/m and end_factor = 1 itself; use LinearLR '
                             'for another line')
        super().__init__(optimizer, start_factor=1.0 / (end - begin), end_factor=1.0, begin=begin, end=end,
                         **kwargs)


def accumulation(cfg: Config) -> int:
    """Iterations per optimizer step: mmengine's ``optim_wrapper.accumulative_counts`` (1 = no accumulation)."""
    return int((cfg.get('optim_wrapper') or {}).get('accumulative_counts', 1))


def effective_batch(cfg: Config, world_size: int = 1) -> int:
    """The images of one optimizer step: processes x batch per process x accumulated iterations."""
    return world_size * cfg.train_dataloader.batch_size * accumulation(cfg)


def scaled_lr(cfg: Config, world_size: int = 1) -> float:
    """The optimizer lr after ``auto_scale_lr`` as BagRunner applies it: lr x effective batch / base_batch_size,
    the effective batch being processes x batch x ``accumulative_counts`` (engine.runner.BagRunner.scale_lr)."""
    lr = cfg.optim_wrapper.optimizer.lr
    auto = cfg.get('auto_scale_lr') or {}
    if auto.get('enable', False):
        lr = lr * effective_batch(cfg, world_size) / auto['base_batch_size']
    return lr


def lr_schedule(cfg: Config, iters_per_epoch: int, world_size: int = 1) -> list[float]:
    """The lr of every training iteration, stepping the config's schedulers as ParamSchedulerHook does.

    Schedulers step per iteration (a data-loader batch), also under gradient accumulation: an optimizer
    step uses the lr of its window's last iteration, so a per-iteration warmup of m iterations is one of
    m / accumulation steps, ending at the same epoch, as the paper's lr_i = i * eta / m over its steps."""
    if iters_per_epoch < 1:
        raise ValueError(f'iters_per_epoch must be >= 1, got {iters_per_epoch}')
    max_epochs = cfg.train_cfg.max_epochs
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=scaled_lr(cfg, world_size))
    schedulers = []
    for s in copy.deepcopy(cfg.param_scheduler):
        s.setdefault('end', max_epochs if s.get('by_epoch', True) else max_epochs * iters_per_epoch)
        schedulers.append(PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=optimizer,
                                                                      epoch_length=iters_per_epoch)))
    lrs = []
    for _ in range(max_epochs):
        for _ in range(iters_per_epoch):
            lrs.append(optimizer.param_groups[0]['lr'])
            optimizer.step()  # a no-op (no gradients); keeps torch's step-order check quiet
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return lrs
