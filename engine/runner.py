"""An mmengine Runner with the project's checkpoint policy, preflight checks and CPU multi-process support.

* Checkpoint policy (see backbones.checkpoint): torch >= 2.6 loads with ``weights_only=True`` by
  default, which mmengine 0.10.7 does not expect. Here the choice is explicit: ``--resume`` reads the
  project's own training state with the full unpickler; every other load (``load_from``, a checkpoint
  to test) goes through the restricted one.
* Checkpoints are written to ``<name>.part`` and renamed, so a kill while saving leaves no partial
  file under a name ``--resume`` would read; a distillation run records its teacher (config, file,
  sha256) in the checkpoint meta, and resuming with another teacher file is an error.
* Before the Runner exists the config is checked (batch sizes, writable work dir); before the first
  iteration :class:`~engine.preflight.PreflightHook` checks the data against the model.
* Multi-process on CPU: mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the
  model with ``device_ids``, both of which need a GPU; here the process group uses gloo and DDP gets
  no device ids. torch's SyncBatchNorm rejects CPU tensors, so on CPU SyncBN layers (``norm_cfg``
  SyncBN or ``sync_bn``) become per-process BN, with a warning. With a GPU, mmengine's path (nccl,
  SyncBN) is unchanged.
* Seeds: see engine.determinism (worker seeds per epoch; position-keyed seeds in deterministic mode).
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from functools import partial

import torch
from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import is_distributed, is_main_process
from mmengine.model import is_model_wrapper, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from backbones.checkpoint import load_training_state, load_weights_file

from .cli import ConfigError
from .determinism import EpochWorkerSeed, PositionSeedHook
from .preflight import PreflightHook, check_config


def _has_sync_bn(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.SyncBatchNorm) or 'SyncBatchNorm' in type(m).__name__ for m in model.modules())


class BagRunner(Runner):
    _resuming = False

    @classmethod
    def from_cfg(cls, cfg) -> 'BagRunner':
        cfg = copy.deepcopy(cfg)
        check_config(cfg)
        if (cfg.get('randomness') or {}).get('deterministic') and cfg.get('train_dataloader'):
            cfg.train_dataloader.persistent_workers = False  # see engine.determinism
        return super().from_cfg(cfg)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_hook(PreflightHook())
        if self._randomness_cfg.get('deterministic'):
            self.register_hook(PositionSeedHook(self.seed, self.rank))
            self.logger.info(f'deterministic mode: seeds derived from (seed {self.seed}, rank, epoch, iteration); '
                             'train workers are not persistent')

    def setup_env(self, env_cfg: dict) -> None:
        if self.distributed and not is_distributed() and not torch.cuda.is_available():
            if self.launcher != 'pytorch':
                raise ConfigError(f'--launcher {self.launcher} without a GPU: only --launcher pytorch (torchrun) '
                                  'runs multi-process on CPU')
            torch.distributed.init_process_group(backend='gloo')  # env:// from torchrun
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg, model):
        if not self.distributed or torch.cuda.is_available() or is_model_wrapper(model):
            return super().wrap_model(model_wrapper_cfg, model)
        if _has_sync_bn(model) or self.cfg.get('sync_bn'):
            self.logger.warning('SyncBN needs a GPU (torch\'s SyncBatchNorm rejects CPU tensors): on CPU each '
                                'process normalises with its own batch statistics (plain BN)')
        model = revert_sync_batchnorm(model)
        wrapper = dict(model_wrapper_cfg or {})
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper.setdefault('broadcast_buffers', False)
        wrapper.setdefault('find_unused_parameters', self.cfg.get('find_unused_parameters', False))
        return MODEL_WRAPPERS.build(wrapper, default_args=dict(module=model))  # CPU modules take no device_ids

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        loader = Runner.build_dataloader(dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        init = loader.worker_init_fn
        if isinstance(init, partial) and init.func is mmengine_worker_init_fn:
            sampler = getattr(loader.batch_sampler, 'sampler', None) or loader.sampler
            loader.worker_init_fn = EpochWorkerSeed(init.keywords['seed'], init.keywords['rank'], sampler)
        return loader

    def _teacher_reference(self) -> dict | None:
        model = self.model.module if is_model_wrapper(self.model) else self.model
        return getattr(model, 'teacher_reference', None)

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        meta = dict(meta or {})
        teacher = self._teacher_reference()
        if teacher:
            meta['teacher'] = dict(teacher)
        part = f'{filename}.part'
        super().save_checkpoint(out_dir, part, file_client_args, save_optimizer, save_param_scheduler, meta,
                                by_epoch, backend_args)
        if is_main_process():
            os.replace(osp.join(out_dir, part), osp.join(out_dir, filename))

    def resume(self, filename, resume_optimizer=True, resume_param_scheduler=True, map_location='default'):
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = False

    def _check_teacher(self, saved: dict | None, filename: str) -> None:
        current = self._teacher_reference()
        if not saved and not current:
            return
        if not saved or not current or saved.get('sha256') != current.get('sha256'):
            def describe(ref):
                return f'{ref["checkpoint"]} (sha256 {ref["sha256"][:12]}, config {ref["config"]})' if ref else 'none'
            raise ConfigError(f'--resume {filename}: it was trained with distillation teacher {describe(saved)}, '
                              f'this run\'s teacher is {describe(current)}; resume with the same teacher file')

    def load_checkpoint(self, filename, map_location='cpu', strict=False, revise_keys=[(r'^module.', '')]):
        checkpoint = load_training_state(filename) if self._resuming else load_weights_file(filename)
        if self._resuming:
            self._check_teacher((checkpoint.get('meta') or {}).get('teacher'), filename)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
