"""Pretraining survives SIGKILL: resuming from the last checkpoint ends with the weights of the run that
was never interrupted, in deterministic mode (``randomness=dict(seed=0, deterministic=True)``).

The run uses every source of randomness pretraining has: shuffled data order, random crops, flips,
colour jitter and PCA lighting in 2 DataLoader workers, and mixup (Beta and randperm in the main
process). The checkpoint carries model, optimizer (momentum), schedulers and the loop position;
the seeds of the workers and of the main process are derived from (seed, rank, epoch/iteration), so
the resumed epoch draws exactly what the uninterrupted one drew (engine/determinism.py).
"""
import hashlib
import os
import os.path as osp

import torch
from mmengine.config import Config

import classification  # noqa: F401
from safe_read import load_training_state
from backbones.registry import MODELS
from cls_helpers import make_shapes_imagenet
from scale_helpers import REPO, checkpoint_files, cls_config, run_tool, state_dict

SETUP = dict(num_classes=4, batch=8, epochs=3, augment=True, mixup=0.2, workers=2)  # 4 iterations per epoch
KILL_AT = 6  # in epoch 2, after the epoch-1 checkpoint


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def _kill_and_resume(tmp_path, data, extra=''):
    full = cls_config(str(tmp_path / 'full.py'), data, **SETUP, extra=extra)
    killed = cls_config(str(tmp_path / 'killed.py'), data, **SETUP, kill_at=KILL_AT, extra=extra)
    run_tool('pretrain', full, '--work-dir', str(tmp_path / 'full'))
    work = str(tmp_path / 'killed')
    proc = run_tool('pretrain', killed, '--work-dir', work, check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]  # SIGKILL: no cleanup ran
    assert checkpoint_files(work) == ['epoch_1.pth', 'last_checkpoint']
    assert open(osp.join(work, 'last_checkpoint')).read() == 'epoch_1.pth'  # relative to the work dir
    run_tool('pretrain', full, '--work-dir', work, '--resume')  # the latest checkpoint in the work dir
    return state_dict(str(tmp_path / 'full' / 'epoch_3.pth')), work


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=4, per_class={'train': 8}, size=36)
    uninterrupted, work = _kill_and_resume(tmp_path, data)
    resumed = load_training_state(osp.join(work, 'epoch_3.pth'))
    assert resumed['meta']['epoch'] == 3 and resumed['meta']['iter'] == 12
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(resumed)
    assert _max_diff(uninterrupted, state_dict(osp.join(work, 'epoch_1.pth'))) > 1e-3  # epochs 2-3 moved it
    assert _max_diff(uninterrupted, resumed['state_dict']) < 1e-6  # measured 0.0 (bitwise)

    # --resume FILE into another work dir continues from that file just the same
    other = str(tmp_path / 'other')
    run_tool('pretrain', str(tmp_path / 'full.py'), '--work-dir', other, '--resume', osp.join(work, 'epoch_1.pth'))
    assert _max_diff(uninterrupted, state_dict(osp.join(other, 'epoch_3.pth'))) < 1e-6


def test_without_deterministic_mode_the_resumed_run_differs(tmp_path):
    """The control: mmengine alone reseeds nothing at a resume (and its persistent workers keep their
    stream across epochs), so the resumed epochs draw other crops and mixup pairs."""
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=4, per_class={'train': 8}, size=36)
    uninterrupted, work = _kill_and_resume(tmp_path, data, extra='randomness = dict(seed=0, deterministic=False)\n')
    assert _max_diff(uninterrupted, state_dict(osp.join(work, 'epoch_3.pth'))) > 1e-4


def test_resume_with_another_teacher_file_is_an_error(tmp_path):
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=4, per_class={'train': 4}, size=36)
    teacher_cfg = tmp_path / 'teacher.py'
    teacher_cfg.write_text(f"_base_ = '{REPO}/configs/cls/resnet152d_teacher.py'\n"
                           "model = dict(num_classes=4, backbone=dict(depth=18, base_channels=8, stem_channels=16))\n")
    for seed in (0, 1):
        torch.manual_seed(seed)
        teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
        torch.save({'state_dict': teacher.state_dict()}, tmp_path / f'teacher{seed}.pth')

    def config(name, teacher_file, epochs):
        return cls_config(str(tmp_path / name), data, num_classes=4, batch=8, epochs=epochs,
                          distill=dict(teacher_config=str(teacher_cfg), teacher_checkpoint=str(teacher_file)))

    work = str(tmp_path / 'work')
    run_tool('pretrain', config('kd.py', tmp_path / 'teacher0.pth', 1), '--work-dir', work)
    meta = load_training_state(osp.join(work, 'epoch_1.pth'))['meta']
    sha = hashlib.sha256(open(tmp_path / 'teacher0.pth', 'rb').read()).hexdigest()
    assert meta['teacher'] == dict(config=str(teacher_cfg), checkpoint=str(tmp_path / 'teacher0.pth'), sha256=sha)

    proc = run_tool('pretrain', config('kd2.py', tmp_path / 'teacher1.pth', 2), '--work-dir', work, '--resume',
                    check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and 'trained with distillation teacher' in errors[0] and 'teacher0.pth' in errors[0] \
        and 'teacher1.pth' in errors[0], errors
    assert checkpoint_files(work) == ['epoch_1.pth', 'last_checkpoint']  # nothing new written

    run_tool('pretrain', config('kd3.py', tmp_path / 'teacher0.pth', 2), '--work-dir', work, '--resume')
    assert sorted(os.listdir(work)).count('epoch_2.pth') == 1



class _Draws(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return torch.rand(())  # what a random transform in a worker draws


def _draws(loader, epoch):
    loader.sampler.set_epoch(epoch)  # as DistSamplerSeedHook does before each epoch
    return torch.cat(list(loader))


def _loader(seed=0):
    from engine import BagRunner
    return BagRunner.build_dataloader(dict(batch_size=2, num_workers=2, persistent_workers=False,
                                           sampler=dict(type='DefaultSampler', shuffle=False),
                                           collate_fn=dict(type='default_collate'), dataset=_Draws()), seed=seed)


def test_worker_seeds_follow_the_epoch_and_repeat_after_a_rebuild():
    """mmengine seeds workers with seed + rank * num_workers + worker_id, the same every epoch, so
    non-persistent workers repeat last epoch's augmentation; BagRunner mixes in the epoch."""
    from functools import partial

    from mmengine.dataset import DefaultSampler
    from mmengine.dataset.utils import worker_init_fn
    loader = _loader()
    first, second = _draws(loader, 0), _draws(loader, 1)
    assert not torch.equal(first, second)              # a new epoch draws new augmentation
    assert torch.equal(second, _draws(_loader(), 1))   # a resumed epoch (a fresh loader) draws the same
    assert not torch.equal(second, _draws(_loader(seed=1), 1))

    plain = torch.utils.data.DataLoader(_Draws(), batch_size=2, num_workers=2,
                                        worker_init_fn=partial(worker_init_fn, num_workers=2, rank=0, seed=0),
                                        sampler=DefaultSampler(_Draws(), shuffle=False, seed=0))
    assert torch.equal(_draws(plain, 0), _draws(plain, 1))  # mmengine's own seeding: epoch 1 repeats epoch 0
