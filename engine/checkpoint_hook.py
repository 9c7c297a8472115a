"""BagCheckpointHook, the project's checkpoint policy (named by every base config's ``default_hooks``), and the
``last_checkpoint`` file it keeps: mmengine's CheckpointHook with rotation that cannot lose the last complete
checkpoint."""
from __future__ import annotations

import os
import os.path as osp
from contextlib import contextmanager

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

import safe_write


def _same_dir(a: str, b: str) -> bool:
    return osp.realpath(a) == osp.realpath(b)


def write_last_checkpoint(work_dir: str, checkpoint: str) -> None:
    """``work_dir/last_checkpoint`` names ``checkpoint`` relative to the work dir (so a copied or moved
    work dir resumes from its own files), through the writing layer."""
    rel = osp.relpath(osp.realpath(checkpoint), osp.realpath(work_dir))
    if rel.startswith(os.pardir):  # the reader (safe_read.read_last_checkpoint) takes only paths inside
        raise ValueError(f'checkpoint {checkpoint} is outside the work dir {work_dir}')
    safe_write.write_text(osp.join(work_dir, 'last_checkpoint'), rel, what='last_checkpoint')


# -- checkpoint rotation ------------------------------------------------------------------------
class _DeferredRemoval:
    """Stands in for a CheckpointHook's file backend: removals are recorded, not done."""

    def __init__(self, backend):
        self.backend, self.pending = backend, []

    def remove(self, path):
        self.pending.append(path)

    rmtree = remove

    def __getattr__(self, name):
        return getattr(self.backend, name)


@HOOKS.register_module()
class BagCheckpointHook(CheckpointHook):
    """mmengine's CheckpointHook with rotation that cannot lose the last complete checkpoint.

    mmengine deletes the outdated checkpoint (and the previous best) *before* writing the new one, so
    a kill while saving with ``max_keep_ckpts=1`` leaves nothing to resume. Here the order is: write
    the checkpoint through the writing layer (temporary file, rename), point ``last_checkpoint`` at it, then delete what is outdated, and only
    files inside this hook's own directory.
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        # a resumed message hub names the best checkpoint of the run it came from, maybe another dir
        paths = ({'': self.best_ckpt_path} if len(getattr(self, 'key_indicators', [])) == 1
                 else dict(getattr(self, 'best_ckpt_path_dict', {}) or {})) if self.save_best else {}
        for key, path in paths.items():
            if path and not self._own(path):
                runner.logger.info(f'the resumed state names the best checkpoint {path} of another directory; '
                                   'it is left alone')
                if key:
                    self.best_ckpt_path_dict[key] = None
                else:
                    self.best_ckpt_path = None

    def _own(self, path: str) -> bool:
        return _same_dir(osp.dirname(osp.abspath(path)), self.out_dir)

    def _remove(self, runner, path: str) -> None:
        if not self._own(path):
            runner.logger.warning(f'not deleting {path}: it is outside this run\'s directory {self.out_dir}')
            return
        if osp.lexists(path) and not safe_write.remove(path):
            runner.logger.warning(f'not deleting {path}: it was not written by this project, or was changed since')

    @contextmanager
    def _deferred_removals(self, runner):
        real = self.file_backend
        proxy = self.file_backend = _DeferredRemoval(real)
        try:
            yield
        finally:
            self.file_backend = real
        if is_main_process():
            for path in proxy.pending:
                self._remove(runner, path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._deferred_removals(runner):  # the previous best goes once the new best is written
            super()._save_best_checkpoint(runner, metrics)

    # mmengine private CheckpointHook._save_checkpoint_with_step / _save_best_checkpoint: no public API for the
    # rotation order; checked against mmengine 0.10.7
    def _save_checkpoint_with_step(self, runner, step, meta):
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, ckpt_filename, self.file_client_args,
                               save_optimizer=self.save_optimizer, save_param_scheduler=self.save_param_scheduler,
                               meta=meta, by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_last_checkpoint(runner.work_dir, self.last_ckpt)
        for old in outdated:  # only now: the new checkpoint is complete and named by last_checkpoint
            if old != step:
                self._remove(runner, self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old)))
