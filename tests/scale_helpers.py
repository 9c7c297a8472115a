"""Helpers for the multi-process, resume and bad-input tests: tiny configs written next to the data,
the tools run as a user runs them (fresh interpreters, one torch thread each), and a hook that kills
its own process with SIGKILL at a chosen iteration (imported by the child through custom_imports)."""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.join(REPO, 'tests')
MEAN, STD = [123.68, 116.779, 103.939], [58.393, 57.12, 57.375]


@HOOKS.register_module()
class KillAtIter(Hook):
    """SIGKILL this process right after iteration ``at`` (1-based) finished: no cleanup, no atexit."""

    priority = 'LOWEST'

    def __init__(self, at: int):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class KillInSave(Hook):
    """SIGKILL this process halfway through writing the checkpoint file ``name`` (mmengine writes a
    checkpoint through its LocalBackend.put): the file on disk is cut off, nothing after it runs."""

    def __init__(self, name: str):
        self.name = name

    def before_train(self, runner):
        from mmengine.fileio.backends import LocalBackend
        put, name = LocalBackend.put, self.name

        def put_then_die(backend, obj, filepath):
            if osp.basename(str(filepath)).endswith(name):  # the writing layer's temporary file for it
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            return put(backend, obj, filepath)
        LocalBackend.put = put_then_die


def child_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [TESTS, REPO] + ([os.environ['PYTHONPATH']] if os.environ.get('PYTHONPATH') else [])))
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(tool: str, *args: str, nproc: int = 1, timeout: int = 300, check: bool = True,
             ) -> subprocess.CompletedProcess:
    """``tools/<tool>.py`` in one process, or ``tools/dist_train.sh <tool> ... nproc`` (torchrun, gloo)."""
    if nproc == 1:
        cmd = [sys.executable, osp.join(REPO, 'tools', f'{tool}.py'), *args]
        env = child_env()
    else:
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), tool, args[0], str(nproc), *args[1:]]
        env = child_env(PYTHON=sys.executable, MASTER_PORT=str(free_port()))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n'
                             f'{proc.stderr[-6000:]}')
    return proc


def cls_config(path: str, data_root: str, *, num_classes: int, batch: int, epochs: int, augment: bool = False,
               mixup: float = 0.0, workers: int = 0, kill_at: int | str | None = None, distill: dict | None = None,
               extra: str = '') -> str:
    """A ResNet-18-D at 1/8 width on 32-px crops of ``data_root``, every epoch checkpointed, no validation.

    ``augment=False`` uses only deterministic transforms (resize + centre crop); BN runs in eval mode
    (``norm_eval``) so no result depends on how the batch is split across processes. ``kill_at``: an
    iteration (SIGKILL after it) or a checkpoint file name (SIGKILL halfway through writing it).
    """
    if augment:
        pipeline = (f"[dict(type='torchvision/RandomResizedCrop', size=32, scale=(0.25, 1.0), antialias=True), "
                    f"dict(type='torchvision/RandomHorizontalFlip', p=0.5), "
                    f"dict(type='torchvision/ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4), "
                    f"dict(type='torchvision/ToDtype', dtype='float32', scale=False), "
                    f"dict(type='PCALighting', alphastd=0.1), "
                    f"dict(type='torchvision/Normalize', mean={MEAN}, std={STD})]")
    else:
        pipeline = (f"[dict(type='torchvision/Resize', size=32, antialias=True), "
                    f"dict(type='torchvision/CenterCrop', size=32), "
                    f"dict(type='torchvision/ToDtype', dtype='float32', scale=False), "
                    f"dict(type='torchvision/Normalize', mean={MEAN}, std={STD})]")
    hooks = (f"custom_hooks = [dict(type='ResultsHook'), dict(type='KillAtIter', at={kill_at})]\n" if isinstance(kill_at, int) else
             f"custom_hooks = [dict(type='ResultsHook'), dict(type='KillInSave', name={kill_at!r})]\n" if kill_at else '')
    text = f"""_base_ = {osp.join(REPO, 'configs', 'cls', 'resnet50_baseline.py')!r}
custom_imports = dict(imports=['classification', 'engine', 'scale_helpers'], allow_failed_imports=False)
model = dict(num_classes={num_classes}, mixup_alpha={mixup}, distill={distill!r},
             backbone=dict(depth=18, variant='D', stem_channels=8, base_channels=8, norm_eval={not augment}))
train_dataloader = dict(batch_size={batch}, num_workers={workers}, persistent_workers={workers > 0},
                        pin_memory=False, drop_last=True,
                        dataset=dict(data_root={data_root!r}, pipeline={pipeline}))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, save_best=None, max_keep_ckpts=-1, save_last=True))
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
log_processor = dict(by_epoch=True, window_size=1)
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0, deterministic=True)
{hooks}{extra}"""
    with open(path, 'w') as f:
        f.write(text)
    return path


def state_dict(path: str) -> dict:
    from safe_read import load_training_state  # the restricted loader --resume uses
    return load_training_state(path)['state_dict']


def logged_scalars(work_dir: str) -> list[dict]:
    lines = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            lines += [json.loads(line) for line in f]
    return lines


def checkpoint_files(work_dir: str) -> list[str]:
    """Anything a later --resume could pick up: *.pth (a partial one too: the writing layer's temporary file of
    a checkpoint ends in .pth) and last_checkpoint."""
    if not osp.isdir(work_dir):
        return []
    return sorted(f for f in os.listdir(work_dir) if f.endswith('.pth') or f == 'last_checkpoint')


def det_config(path: str, data_root: str, *, batch: int, iters: int, ckpt_every: int, accumulate: int = 1,
               augment: bool = False, sample_all: bool = False, workers: int = 0, kill_at: int | None = None,
               extra: str = '') -> str:
    """The tiny CPU Faster R-CNN (configs/det/faster-rcnn_r18d-tiny_fpn_voc-cpu.py) on a generated VOC
    tree, constant lr, no validation. ``sample_all`` makes the RPN and R-CNN samplers keep every
    positive and negative (no random subset), ``augment=False`` drops the random flip and the shuffle."""
    flip = "dict(type='RandomFlip', prob=0.5), " if augment else ''
    sampler = ("train_cfg=dict(rpn=dict(sampler=dict(num=100000)), rcnn=dict(sampler=dict(num=100000))), "
               if sample_all else '')
    hooks = f"custom_hooks = [dict(type='ResultsHook'), dict(type='KillAtIter', at={kill_at})]\n" if kill_at else ''
    text = f"""_base_ = {osp.join(REPO, 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')!r}
custom_imports = dict(imports=['backbones', 'engine', 'detection', 'scale_helpers'], allow_failed_imports=False)
model = dict({sampler}backbone=dict(norm_eval=True))
train_dataloader = dict(batch_size={batch}, num_workers={workers}, persistent_workers={workers > 0},
                        sampler=dict(shuffle={augment}),
                        dataset=dict(data_root={data_root!r}, pipeline=[
                            dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                            dict(type='Resize', scale=(128, 128), keep_ratio=True), {flip}dict(type='PackDetInputs')]))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
train_cfg = dict(max_iters={iters}, val_interval=100000)
param_scheduler = []
optim_wrapper = dict(accumulative_counts={accumulate})
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={ckpt_every}, max_keep_ckpts=-1))
log_processor = dict(by_epoch=False, window_size=1)
randomness = dict(seed=0, deterministic=True)
{hooks}{extra}"""
    with open(path, 'w') as f:
        f.write(text)
    return path
