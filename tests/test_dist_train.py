"""Multi-process training on CPU through tools/dist_train.sh (torchrun, --launcher pytorch, gloo).

Equivalence needs both runs to see the same samples per optimizer step and nothing that depends on
how a step's batch is split over processes:
* Data order: DefaultSampler shuffles with one seed on every rank and gives rank r the positions
  r, r + W, r + 2W, ... of that permutation, so 2 processes x batch B see, per step, exactly the 2B
  images one process x batch 2B sees. Augmentation is off (resize + centre crop): a random transform
  draws from the RNG of whichever process/worker loads the image, which differs between the two runs.
* BatchNorm runs in eval mode (``norm_eval``): batch statistics over B or 2B images differ. SyncBN
  would make them equal, but torch's SyncBatchNorm rejects CPU tensors (it needs CUDA/XPU), so on CPU
  BagRunner turns SyncBN into per-process BN with a warning (tested below with the SyncBN FCN config).
* Detection: mmdet normalises each loss by the number of anchors / RoIs sampled in the whole batch,
  so 1 x 2 images and 2 x 1 image weigh images differently by design. The exact single-process
  equivalent of DDP's gradient average is gradient accumulation over the same images (mmengine's
  ``accumulative_counts=2`` at batch 1); the samplers keep every candidate (no random subset) and
  the lr is constant (schedulers step per iteration, and accumulation doubles the iterations).
"""
import os.path as osp

import pytest
import torch

from cls_helpers import make_shapes_imagenet
from det_helpers import make_voc_tree
from scale_helpers import REPO, cls_config, det_config, logged_scalars, run_tool, state_dict
from seg_helpers import make_ade_tree


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_cls_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=4, per_class={'train': 8}, size=36)
    one = cls_config(str(tmp_path / 'one.py'), data, num_classes=4, batch=8, epochs=2)
    two = cls_config(str(tmp_path / 'two.py'), data, num_classes=4, batch=4, epochs=2)
    run_tool('pretrain', one, '--work-dir', str(tmp_path / 'w1'))
    proc = run_tool('pretrain', two, '--work-dir', str(tmp_path / 'w2'), nproc=2)
    assert 'Distributed training: True' in proc.stdout

    final1, final2 = state_dict(str(tmp_path / 'w1' / 'epoch_2.pth')), state_dict(str(tmp_path / 'w2' / 'epoch_2.pth'))
    start = state_dict(str(tmp_path / 'w1' / 'epoch_1.pth'))
    moved = _max_diff(final1, start)
    assert moved > 1e-4  # the second epoch changed the weights ...
    assert _max_diff(final1, final2) < 1e-6 < moved / 100  # ... identically in both runs (measured 1.5e-8)

    # linear scaling from the real global batch: 0.1 x (2 processes x 4) / 256, logged at every iteration;
    # 32 images / global batch 8 = 4 iterations per epoch, i.e. each rank read a disjoint half
    logged = [s for s in logged_scalars(str(tmp_path / 'w2')) if 'lr' in s]
    assert [s['iter'] for s in logged] == list(range(1, 9))
    assert all(s['lr'] == pytest.approx(0.1 * 2 * 4 / 256, rel=1e-9) for s in logged)


def test_det_two_processes_equal_one_process_accumulating_the_same_images(tmp_path):
    make_voc_tree(str(tmp_path / 'voc'), {'trainval': 6}, size=128, seed=0)
    root = str(tmp_path / 'voc' / 'VOCdevkit') + '/'
    acc = det_config(str(tmp_path / 'acc.py'), root, batch=1, iters=6, ckpt_every=6, accumulate=2, sample_all=True)
    two = det_config(str(tmp_path / 'two.py'), root, batch=1, iters=3, ckpt_every=3, sample_all=True)
    alone = det_config(str(tmp_path / 'alone.py'), root, batch=1, iters=3, ckpt_every=3, sample_all=True)
    run_tool('train_det', acc, '--work-dir', str(tmp_path / 'acc'))
    run_tool('train_det', two, '--work-dir', str(tmp_path / 'two'), nproc=2)
    run_tool('train_det', alone, '--work-dir', str(tmp_path / 'alone'))

    two_final = state_dict(str(tmp_path / 'two' / 'iter_3.pth'))
    assert _max_diff(state_dict(str(tmp_path / 'acc' / 'iter_6.pth')), two_final) < 1e-6  # measured 0.0
    # control: one process stepping on its own images (what rank 0 alone would do) ends elsewhere
    assert _max_diff(state_dict(str(tmp_path / 'alone' / 'iter_3.pth')), two_final) > 1e-4
    # the same gradient norm at every optimizer step (logged at accumulation steps 2, 4, 6)
    norms_two = [s['grad_norm'] for s in logged_scalars(str(tmp_path / 'two'))]
    norms_acc = [s['grad_norm'] for s in logged_scalars(str(tmp_path / 'acc')) if s['iter'] % 2 == 0]
    assert norms_two == pytest.approx(norms_acc, rel=1e-5)


def test_seg_syncbn_config_runs_two_processes_on_cpu(tmp_path):
    """configs/seg use norm_cfg SyncBN: under torchrun on CPU it trains, with per-process BN and a warning."""
    data = make_ade_tree(str(tmp_path / 'ade'), n_train=4, n_val=1, size=(72, 64))
    opts = [f'{k}.dataset.data_root={data}' for k in ('train_dataloader', 'val_dataloader')] + [
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'param_scheduler.0.end=2',
        'default_hooks.checkpoint.interval=2']
    config = osp.join(REPO, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')
    proc = run_tool('train_seg', config, '--work-dir', str(tmp_path / 'w'), '--cfg-options', *opts, nproc=2)
    assert 'SyncBN needs a GPU' in proc.stdout
    assert osp.isfile(tmp_path / 'w' / 'iter_2.pth') and osp.isfile(tmp_path / 'w' / 'val_results.json')
    assert not [k for k in torch.load(tmp_path / 'w' / 'iter_2.pth', weights_only=False)['state_dict']
                if k.startswith('module.')]
