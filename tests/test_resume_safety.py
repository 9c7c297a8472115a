"""Nothing lost: a SIGKILL halfway through writing a checkpoint (with ``max_keep_ckpts=1``, as every
fashion config) leaves the previous checkpoint and ``last_checkpoint`` intact and ``--resume``
continues from it to the weights of the uninterrupted run; resuming another run's checkpoint into a
new work dir leaves that run's files alone; a copied work dir resumes from its own files."""
from __future__ import annotations

import os
import os.path as osp
import shutil

import pytest
import torch

import safe_write
from safe_read import load_training_state, read_last_checkpoint
from user_errors import CheckpointError
from cls_helpers import make_shapes_imagenet
from scale_helpers import MEAN, STD, checkpoint_files, cls_config, run_tool, state_dict
from test_bad_input_more import snapshot

KEEP_ONE = ("default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best=None, "
            "max_keep_ckpts=1, save_last=True))\n")
PIPE = (f"[dict(type='torchvision/Resize', size=32, antialias=True), dict(type='torchvision/CenterCrop', size=32), "
        f"dict(type='torchvision/ToDtype', dtype='float32', scale=False), "
        f"dict(type='torchvision/Normalize', mean={MEAN}, std={STD})]")


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_sigkill_while_saving_then_resume_continues_from_the_last_complete_checkpoint(tmp_path):
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=4, per_class={'train': 4}, size=36)
    setup = dict(num_classes=4, batch=8, epochs=3, extra=KEEP_ONE)  # 2 iterations per epoch
    full = cls_config(str(tmp_path / 'full.py'), data, **setup)
    killed = cls_config(str(tmp_path / 'killed.py'), data, **setup, kill_at='epoch_2.pth')
    run_tool('pretrain', full, '--work-dir', str(tmp_path / 'full'))
    work = tmp_path / 'work'
    proc = run_tool('pretrain', killed, '--work-dir', str(work), check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]  # killed while epoch_2.pth's temporary file was half written
    files = checkpoint_files(str(work))
    assert files[0].startswith(safe_write.TMP_PREFIX) and files[0].endswith('.epoch_2.pth')
    assert files[1:] == ['epoch_1.pth', 'last_checkpoint']
    assert (work / 'last_checkpoint').read_text() == 'epoch_1.pth'  # relative to the work dir
    assert load_training_state(str(work / 'epoch_1.pth'))['meta']['epoch'] == 1  # complete: not deleted first
    assert (work / 'train.lock').is_file()  # the killed run's lock

    proc = run_tool('pretrain', full, '--work-dir', str(work), '--resume')
    assert 'took over the stale lock' in proc.stdout and f'removed {files[0]}' in proc.stdout
    assert 'resuming from the latest checkpoint' in proc.stdout and 'epoch_1.pth' in proc.stdout
    assert checkpoint_files(str(work)) == ['epoch_3.pth', 'last_checkpoint']  # max_keep_ckpts=1 still holds
    assert not (work / 'train.lock').exists()
    uninterrupted = state_dict(str(tmp_path / 'full' / 'epoch_3.pth'))
    assert _max_diff(uninterrupted, state_dict(str(work / 'epoch_3.pth'))) < 1e-6  # measured 0.0


def test_resuming_another_runs_checkpoint_leaves_that_run_alone(tmp_path):
    """mmengine's CheckpointHook deletes the best checkpoint the resumed state names, wherever it is:
    ``--resume other/epoch_1.pth --work-dir new`` deleted other's best_*.pth."""
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=3, per_class={'train': 4, 'val': 2}, size=36)
    extra = (f"val_dataloader = dict(batch_size=6, num_workers=0, persistent_workers=False, pin_memory=False, "
             f"dataset=dict(data_root={data!r}, split='val', pipeline={PIPE}))\n"
             "val_cfg = dict()\nval_evaluator = dict(type='Accuracy', topk=(1,))\n"
             "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, save_best='accuracy/top1', "
             "rule='greater', max_keep_ckpts=1, save_last=True))\n")
    cfg1 = cls_config(str(tmp_path / 'one.py'), data, num_classes=3, batch=6, epochs=1, extra=extra)
    cfg2 = cls_config(str(tmp_path / 'two.py'), data, num_classes=3, batch=6, epochs=2, extra=extra)
    other = tmp_path / 'other'
    run_tool('pretrain', cfg1, '--work-dir', str(other))
    best = [f for f in os.listdir(other) if f.startswith('best_')]
    assert best == ['best_accuracy_top1_epoch_1.pth']
    # make epoch 2 of the new run a new best for certain: its recorded best score is below any accuracy
    ckpt = load_training_state(str(other / 'epoch_1.pth'))
    assert ckpt['message_hub']['runtime_info']['best_ckpt'] == str(other / best[0])
    ckpt['message_hub']['runtime_info']['best_score'] = -1.0
    torch.save(ckpt, other / 'epoch_1_low_best.pth')
    before = snapshot(str(other))

    new = tmp_path / 'new'
    proc = run_tool('pretrain', cfg2, '--work-dir', str(new), '--resume', str(other / 'epoch_1_low_best.pth'))
    assert snapshot(str(other)) == before  # nothing deleted, replaced or added there
    assert 'names the best checkpoint' in proc.stdout and 'it is left alone' in proc.stdout
    assert sorted(f for f in os.listdir(new) if f.endswith('.pth')) == ['best_accuracy_top1_epoch_2.pth',
                                                                       'epoch_2.pth']


def test_a_copied_work_dir_resumes_from_its_own_files(tmp_path):
    """``last_checkpoint`` names its checkpoint relative to the work dir, so a copy resumes from its own files
    (the original is damaged here: reading it would fail). An absolute path (as mmengine itself writes, or
    an older run of this project) is not followed anywhere: it is one error that says to pass --resume FILE."""
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=3, per_class={'train': 2}, size=36)
    one = cls_config(str(tmp_path / 'one.py'), data, num_classes=3, batch=6, epochs=1)
    two = cls_config(str(tmp_path / 'two.py'), data, num_classes=3, batch=6, epochs=2)
    original, copy = tmp_path / 'original', tmp_path / 'copy'
    run_tool('pretrain', one, '--work-dir', str(original))
    assert (original / 'last_checkpoint').read_text() == 'epoch_1.pth'
    shutil.copytree(original, copy)
    blob = (original / 'epoch_1.pth').read_bytes()
    (original / 'epoch_1.pth').write_bytes(blob[:len(blob) // 3])  # reading the original would fail now
    run_tool('pretrain', two, '--work-dir', str(copy), '--resume')
    assert (copy / 'last_checkpoint').read_text() == 'epoch_2.pth'
    assert load_training_state(str(copy / 'epoch_2.pth'))['meta']['epoch'] == 2
    assert osp.getsize(original / 'epoch_1.pth') == len(blob) // 3  # the original was not touched
    old_style = tmp_path / 'old_style'
    old_style.mkdir()
    (old_style / 'epoch_1.pth').write_bytes(b'x')
    (old_style / 'last_checkpoint').write_text(str(original / 'epoch_1.pth'))  # as mmengine writes it
    with pytest.raises(CheckpointError, match=r"names the absolute path .*: pass --resume .*old_style/epoch_1\.pth"):
        read_last_checkpoint(str(old_style))
