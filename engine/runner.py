"""An mmengine Runner with the project's checkpoint policy, preflight checks and CPU multi-process support.

* Loading (see backbones.checkpoint): there is no full unpickler. ``--resume`` reads the training
  state, and every other load (``load_from``, a checkpoint to test) reads weights, through the
  restricted loader with mmengine's bookkeeping types allow-listed. A checkpoint given by path is
  read and checked strictly against the model (keys and shapes: architecture, variant, task, classes)
  when the Runner is built, before any data is indexed or anything is written.
* Saving: checkpoints go through the writing layer (safe_write: a temporary file, then a rename), so a
  kill while saving leaves no partial file under a name ``--resume`` would read; a failed write (a full
  disk) removes the temporary file and stops with one error, the previous checkpoint intact.
  :class:`BagCheckpointHook` replaces mmengine's CheckpointHook (same arguments; ``max_keep_ckpts`` keeps
  its meaning): it deletes the outdated checkpoint only after the new one is complete and
  ``last_checkpoint`` names it,
  writes ``last_checkpoint`` atomically and relative to the work dir, and never deletes a file outside
  its own directory (a resumed state may name another run's ``best_*.pth``).
* Work dir: training holds ``train.lock`` (pid, host, process start time) in the work dir; a second
  training into a live work dir stops with an error naming the first; the lock of a killed run is
  detected (no such process on this host) and taken over, with a log line. The config copy is written
  once the lock is held.
* A distillation run records its teacher (config, file, sha256) in the checkpoint meta; resuming with
  another teacher file is an error.
* Before the Runner exists the config is checked (batch sizes, loop lengths, writable work dir);
  before the first iteration :class:`~engine.preflight.PreflightHook` checks the data against the model.
* Multi-process on CPU: mmengine's pytorch launcher calls ``torch.cuda.set_device`` and wraps the
  model with ``device_ids``, both of which need a GPU; here the process group uses gloo and DDP gets
  no device ids. torch's SyncBatchNorm rejects CPU tensors, so on CPU SyncBN layers (``norm_cfg``
  SyncBN or ``sync_bn``) become per-process BN, with a warning. With a GPU, mmengine's path (nccl,
  SyncBN) is unchanged.
* Seeds: see engine.determinism (worker seeds per epoch; position-keyed seeds in deterministic mode).
* Gradient accumulation (``optim_wrapper.accumulative_counts``): ``auto_scale_lr`` scales the lr by the
  effective batch, processes x batch x accumulation; an ``EMAHook`` config is built as
  :class:`~engine.ema.BagEMAHook` (one EMA update per optimizer step).
* EMA checkpoints (engine/ema.py): ``load_from`` loads the EMA weights of a checkpoint that has them, the
  raw ones with ``load_weights='raw'`` (the tools' ``--weights``); ``--resume`` without an EMAHook continues
  from the raw weights, with a warning.
"""
from __future__ import annotations

import copy
import os.path as osp
from functools import partial

import torch
from mmengine.dataset.utils import worker_init_fn as mmengine_worker_init_fn
from mmengine.dist import is_distributed, is_main_process
from mmengine.hooks import CheckpointHook, EMAHook
from mmengine.model import is_model_wrapper, revert_sync_batchnorm
from mmengine.optim import OptimWrapperDict
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from mmengine.runner import Runner
# mmengine private _load_checkpoint_to_model: no public API for loading an already-read checkpoint dict with
# revise_keys (what Runner.load_checkpoint does after reading); checked against mmengine 0.10.7
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from backbones.checkpoint import check_model_fits, one_line_reason
import safe_write
from safe_read import load_training_state, load_weights_file, read_last_checkpoint
from user_errors import USER_ERRORS, CheckpointError, ConfigError

from .checkpoint_hook import BagCheckpointHook
from .ema import BagEMAHook, has_ema, select_weights
from .determinism import EpochWorkerSeed, PositionSeedHook
from .guard import one_line
from .preflight import PreflightHook, check_config
from .run_inputs import check_run_outputs
from .work_dir_lock import WorkDirLock

_PRELOADED: dict = {}  # load_from -> checkpoint read by from_cfg, checked against the model in __init__


def _has_sync_bn(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.SyncBatchNorm) or 'SyncBatchNorm' in type(m).__name__ for m in model.modules())


@RUNNERS.register_module()  # configs name it (runner_type='BagRunner'), so mmdet's/mmseg's own tools use it
class BagRunner(Runner):
    _resuming = False
    _config_dumped = False
    _checked = None  # (filename, checkpoint) read and checked when the Runner was built

    @classmethod
    def from_cfg(cls, cfg) -> 'BagRunner':
        cfg = copy.deepcopy(cfg)
        if cfg.get('load_from'):  # an unreadable or refused file stops before anything is created
            path = cfg.load_from
            _PRELOADED[path] = load_training_state(path) if cfg.get('resume') else load_weights_file(path)
            if not cfg.get('resume'):
                select_weights(_PRELOADED[path], cfg.get('load_weights'), path)  # --weights ema without EMA: now
        check_config(cfg)
        check_run_outputs(cfg)
        if (cfg.get('randomness') or {}).get('deterministic') and cfg.get('train_dataloader'):
            cfg.train_dataloader.persistent_workers = False  # see engine.determinism
        try:
            return super().from_cfg(cfg)
        finally:
            _PRELOADED.pop(cfg.get('load_from'), None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_hook(PreflightHook())
        if self.deterministic:  # randomness.deterministic, as set_randomness applied it
            self.register_hook(PositionSeedHook(self.seed, self.rank))
            self.logger.info(f'deterministic mode: seeds derived from (seed {self.seed}, rank, epoch, iteration); '
                             'train workers are not persistent')
        if self._load_from:  # fail now, before any data is indexed or any file written
            self._checked = (self._load_from, self._read_checkpoint(self._load_from, resume=bool(self._resume)))

    # -- building -----------------------------------------------------------------------------
    def build_model(self, model):
        try:
            return super().build_model(model)
        except USER_ERRORS:
            raise
        except TypeError as e:
            if 'unexpected keyword argument' in str(e):
                raise  # the guard adds its hint for a key a component does not take
            raise ConfigError(f'the model config does not build: {one_line(e)}') from e
        except (ValueError, KeyError, AssertionError) as e:
            raise ConfigError(f'the model config does not build: {one_line(e)}') from e

    def register_hook(self, hook, priority=None) -> None:
        """A checkpoint hook config of mmengine's type (a stock mmdet/mmseg ``default_runtime``) is built as
        BagCheckpointHook, the same arguments with the safe rotation; the base configs name it themselves."""
        if isinstance(hook, dict) and hook.get('type') in (CheckpointHook, 'CheckpointHook', 'mmengine.CheckpointHook'):
            hook = dict(hook, type=BagCheckpointHook)
        elif isinstance(hook, dict) and hook.get('type') in (EMAHook, 'EMAHook', 'mmengine.EMAHook'):
            hook = dict(hook, type=BagEMAHook)  # the same hook, updated once per optimizer step (engine/ema.py)
        elif type(hook) is CheckpointHook:
            raise ConfigError('an mmengine CheckpointHook object was given: pass a config dict (it is built as '
                              'BagCheckpointHook) or a BagCheckpointHook, which never loses the last checkpoint')
        super().register_hook(hook, priority)

    # mmengine private OptimWrapper._accumulative_counts: no public getter for accumulative_counts; checked against
    # mmengine 0.10.7
    def scale_lr(self, optim_wrapper, auto_scale_lr=None) -> None:
        """mmengine's linear scaling (lr x processes x batch / base_batch_size), times each wrapper's
        ``accumulative_counts``: the lr follows the effective batch of an optimizer step, processes x batch x
        accumulation (mmengine counts processes x batch only, which would leave an accumulating run the lr of
        its per-iteration batch)."""
        super().scale_lr(optim_wrapper, auto_scale_lr)
        if not auto_scale_lr or not auto_scale_lr.get('enable', False):
            return
        wrappers = list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict) else [optim_wrapper]
        for wrapper in wrappers:
            n = getattr(wrapper, '_accumulative_counts', 1)
            if n > 1:
                for group in wrapper.optimizer.param_groups:
                    group['lr'] = group['lr'] * n
                self.logger.info(f'gradient accumulation: {n} iterations per optimizer step, so the effective batch '
                                 f'is {n} x the batch above; the lr is scaled by {n} more (linear scaling)')

    def dump_config(self) -> None:
        """Deferred from ``__init__`` until the work dir is known to be this run's (lock held); written through
        the writing layer (mmengine's own dump would replace any file of that name)."""
        if self._config_dumped and is_main_process():
            name = osp.basename(self.cfg.filename) if self.cfg.filename else f'{self.timestamp}.py'
            path = osp.join(self.work_dir, name)
            if self.cfg.filename and osp.realpath(path) == osp.realpath(self.cfg.filename):
                return  # run from its own copy in this work dir: the copy is there
            safe_write.write_with(path, self.cfg.dump, what='config copy')

    def _dump_config_now(self) -> None:
        self._config_dumped = True
        self.dump_config()

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

    # -- running ------------------------------------------------------------------------------
    def train(self):
        lock = WorkDirLock(self.work_dir, self.logger) if is_main_process() else None
        if lock:
            # files a killed run was writing (their pid is gone; a live run's are left alone)
            for name in safe_write.remove_stale_temps(self.work_dir):
                self.logger.info(f'removed {name}: a file whose writing was interrupted (a killed run)')
            safe_write.check_output(osp.join(self.work_dir, 'last_checkpoint'), 'last_checkpoint')
            lock.acquire()
        try:
            self._dump_config_now()
            return super().train()
        finally:
            if lock:
                lock.release()

    def val(self):
        self._dump_config_now()
        return super().val()

    def test(self):
        self._dump_config_now()
        return super().test()

    # -- checkpoints --------------------------------------------------------------------------
    def _teacher_reference(self) -> dict | None:
        model = self.model.module if is_model_wrapper(self.model) else self.model
        return getattr(model, 'teacher_reference', None)

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        meta = dict(meta or {})
        teacher = self._teacher_reference()
        if teacher:
            meta['teacher'] = dict(teacher)
        if not is_main_process():  # mmengine saves on the main process only
            return super().save_checkpoint(out_dir, filename, file_client_args, save_optimizer,
                                           save_param_scheduler, meta, by_epoch, backend_args)
        path = osp.join(out_dir, filename)

        def save(tmp):
            super(BagRunner, self).save_checkpoint(out_dir, osp.basename(tmp), file_client_args, save_optimizer,
                                                   save_param_scheduler, meta, by_epoch, backend_args)
        try:
            safe_write.write_with(path, save, what='checkpoint')
        except (OSError, RuntimeError) as e:
            try:
                last = read_last_checkpoint(self.work_dir)
            except CheckpointError:
                last = None  # the disk-full error is the one to report
            kept = f'the last complete checkpoint {last} is intact; ' if last else ''
            raise CheckpointError(f'could not write checkpoint {path} '
                                  f'({one_line_reason(e)}); {kept}free disk space, then --resume') from e

    def resume(self, filename, resume_optimizer=True, resume_param_scheduler=True, map_location='default'):
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        except USER_ERRORS:
            raise
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            # the model fits (checked strictly); what is left is optimizer / scheduler state
            raise CheckpointError(f'--resume {filename}: its optimizer or scheduler state does not fit this run '
                                  f'({type(e).__name__}: {one_line(e)}); resume with the config it was trained '
                                  'with') from e
        finally:
            self._resuming = False

    # mmengine private _has_loaded/_resume/_load_from (also in __init__, load_checkpoint): no public API for the
    # load state Runner.load_or_resume keeps; checked against mmengine 0.10.7
    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume and self._load_from is None:
            # auto resume: last_checkpoint may be relative (ours) or absolute (older mmengine runs)
            latest = read_last_checkpoint(self.work_dir)
            if latest is None:
                self.logger.info(f'--resume: no last_checkpoint in {self.work_dir}; starting from scratch')
                self._has_loaded = True
                return
            self.logger.info(f'resuming from the latest checkpoint {latest}')
            self.resume(latest)
            self._has_loaded = True
            return
        super().load_or_resume()

    def _check_teacher(self, saved: dict | None, filename: str) -> None:
        current = self._teacher_reference()
        if not saved and not current:
            return
        if not saved or not current or saved.get('sha256') != current.get('sha256'):
            def describe(ref):
                return f'{ref["checkpoint"]} (sha256 {ref["sha256"][:12]}, config {ref["config"]})' if ref else 'none'
            raise ConfigError(f'--resume {filename}: it was trained with distillation teacher {describe(saved)}, '
                              f'this run\'s teacher is {describe(current)}; resume with the same teacher file')

    def _read_checkpoint(self, filename: str, resume: bool) -> dict:
        """Read with the restricted loader and check strictly against this Runner's model."""
        checkpoint = _PRELOADED.pop(filename, None) or (load_training_state(filename) if resume
                                                        else load_weights_file(filename))
        if not resume:
            ema = has_ema(checkpoint)
            checkpoint, which = select_weights(checkpoint, self.cfg.get('load_weights'), filename)
            if ema:
                self.logger.info(f'{filename}: loading its {"EMA" if which == "ema" else "raw (trained)"} weights '
                                 f'(the other ones: --weights {"raw" if which == "ema" else "ema"})')
        elif has_ema(checkpoint) and not any(isinstance(h, EMAHook) for h in self.hooks):
            # its state_dict holds the EMA weights (engine/ema.py): training continues from the raw ones
            checkpoint = select_weights(checkpoint, 'raw', filename)[0]
            self.logger.warning(f'--resume {filename}: the checkpoint has EMA weights but this config has no EMAHook; '
                                'training continues from its raw weights and the EMA is dropped')
        model = self.model.module if is_model_wrapper(self.model) else self.model
        check_model_fits(model, checkpoint, filename)
        if resume:
            self._check_teacher((checkpoint.get('meta') or {}).get('teacher'), filename)
        return checkpoint

    def load_checkpoint(self, filename, map_location='cpu', strict=False, revise_keys=[(r'^module.', '')]):
        if self._checked and self._checked[0] == filename:
            checkpoint, self._checked = self._checked[1], None
        else:
            checkpoint = self._read_checkpoint(filename, resume=self._resuming)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint


def runner_from_cfg(cfg) -> Runner:
    """The Runner a config names (``runner_type``, built through mmengine's RUNNERS, as mmdet's and mmseg's
    own tools do); BagRunner, with the project's checkpoint policy and checks, where a config names none."""
    if 'runner_type' not in cfg:
        cfg.runner_type = 'BagRunner'
    return RUNNERS.build(cfg)
