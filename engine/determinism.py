"""Seeds keyed to the position in training, so a resumed run draws what the uninterrupted run drew.

mmengine seeds each DataLoader worker with ``seed + rank * num_workers + worker_id``: the same stream
every epoch (non-persistent workers repeat last epoch's augmentation), and a resumed run restarts the
main process's RNG from the bare seed. Here:

* :class:`EpochWorkerSeed` (always on): a worker's seed mixes (seed, epoch, rank, worker id); the
  epoch is the sampler's, which ``DistSamplerSeedHook`` sets before the workers start.
* :class:`PositionSeedHook` (with ``randomness=dict(seed=S, deterministic=True)``): the main process's
  torch/numpy/random state is re-derived from (seed, rank, position) before each batch is fetched and
  before each iteration, so data drawn in the main process (``num_workers=0``), mixup, RPN sampling
  and the like repeat after a resume, whatever ran in between (validation, the fast-forward of
  mmengine's iteration-based loop). Persistent train workers are turned off in that mode (their
  stream would run on across epochs, which a resumed run cannot reproduce).
"""
from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

_TAGS = {'epoch': 1, 'iter': 2, 'data': 3, 'fetch': 4, 'worker': 5}


def derive_seed(seed: int, *key) -> int:
    words = [int(seed) & 0xFFFFFFFF] + [_TAGS.get(k, k) if isinstance(k, str) else int(k) for k in key]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def seed_everything(value: int) -> None:
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


class EpochWorkerSeed:
    """DataLoader ``worker_init_fn``: seeds numpy, random and torch from (seed, epoch, rank, worker)."""

    def __init__(self, seed: int, rank: int, sampler=None):
        self.seed, self.rank, self.sampler = seed, rank, sampler

    def __call__(self, worker_id: int) -> None:
        epoch = int(getattr(self.sampler, 'epoch', 0) or 0)
        seed_everything(derive_seed(self.seed, 'worker', epoch, self.rank, worker_id))


class _ReseedingIterator:
    """Re-derives the main RNG before every batch fetched by an iteration-based loop (fast-forward too)."""

    def __init__(self, iterator, reseed):
        self._iterator, self._reseed, self.fetched = iterator, reseed, 0

    def __iter__(self):
        return self

    def __next__(self):
        self._reseed('fetch', self.fetched)
        self.fetched += 1
        return next(self._iterator)


class PositionSeedHook(Hook):
    priority = 'VERY_HIGH'

    def __init__(self, seed: int, rank: int):
        self.seed, self.rank = seed, rank

    def _reseed(self, *key) -> None:
        seed_everything(derive_seed(self.seed, self.rank, *key))

    def before_train_epoch(self, runner) -> None:
        self._reseed('epoch', runner.epoch)
        loop = runner.train_loop
        # mmengine private IterBasedTrainLoop.dataloader_iterator (undocumented): no public API for a hook per batch
        # fetched (a resume's fast-forward fetches without iteration hooks); checked against mmengine 0.10.7
        if isinstance(loop, IterBasedTrainLoop) and not isinstance(loop.dataloader_iterator, _ReseedingIterator):
            loop.dataloader_iterator = _ReseedingIterator(loop.dataloader_iterator, self._reseed)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._reseed('iter', runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._reseed('data', runner.iter + 1)  # the next fetch of an epoch-based loop
