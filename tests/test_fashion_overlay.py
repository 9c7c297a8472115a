"""Each Fashion-MNIST pretraining row is its paper row plus the one overlay (configs/cls/_base_/fashion.py):
resolved, the two configs differ only in sizes, schedule lengths, widths, data roots and the teacher,
nowhere in the recipe. The class names of the configs are the ones experiments/fashion.py writes.
"""
from __future__ import annotations

import fnmatch
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from experiments import fashion

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS = osp.join(REPO, 'configs', 'cls')
PAPER_ROW = {
    'fashion_b_standard': 'resnet50b_baseline', 'fashion_d_efficient': 'resnet50d_efficient',
    'fashion_d_cosine': 'resnet50d_cosine', 'fashion_d_cosine_ls': 'resnet50d_cosine_ls',
    'fashion_d_cosine_ls_kd': 'resnet50d_cosine_ls_kd', 'fashion_d_cosine_ls_mixup': 'resnet50d_cosine_ls_mixup',
    'fashion_d_tricks': 'resnet50d_tricks', 'fashion_teacher': 'resnet152d_teacher',
    'fashion_d_tricks_ema': 'resnet50d_tricks_ema',
    **{f'fashion_mobilenet_{r}': f'mobilenet_{r}'
       for r in ('efficient', 'cosine', 'cosine_ls', 'cosine_ls_kd', 'cosine_ls_mixup', 'tricks')},
}
# what the overlay may change (fnmatch patterns of paths); everything else must be the paper row's
OVERLAY = (
    'data_root', 'train_pipeline', 'val_pipeline', 'fashion_classes', 'fashion_widths.*', 'fashion_epochs.*',
    *(f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
      for key in ('batch_size', 'num_workers', 'persistent_workers', 'pin_memory', 'dataset.data_root',
                  'dataset.classes', 'dataset.pipeline')),
    'model.num_classes', 'model.backbone.depth', 'model.backbone.stem_channels', 'model.backbone.base_channels',
    'model.backbone.width', 'model.distill.teacher_config', 'model.distill.teacher_checkpoint',
    'train_cfg.max_epochs', 'param_scheduler.*.begin', 'param_scheduler.*.end', 'param_scheduler.*.milestones',
    'default_hooks.logger.interval', 'default_hooks.checkpoint.max_keep_ckpts', 'env_cfg.cudnn_benchmark',
)


def _flat(node, prefix=''):
    """path -> value; dicts are walked, and the scheduler list (its entries keep their order and types)."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f'{prefix}{key}.').items()}
    if prefix == 'param_scheduler.':
        return {k: v for i, value in enumerate(node) for k, v in _flat(value, f'{prefix}{i}.').items()}
    return {prefix[:-1]: node}


def _resolved(name: str) -> Config:
    return Config.fromfile(osp.join(CLS, f'{name}.py'))


def test_every_fashion_row_is_listed():
    rows = {osp.basename(p)[:-3] for p in glob.glob(osp.join(CLS, 'fashion_*.py'))}
    assert rows == set(PAPER_ROW)


@pytest.mark.parametrize('row', sorted(PAPER_ROW))
def test_fashion_row_is_paper_row_plus_overlay(row):
    cfg, paper = _resolved(row), _resolved(PAPER_ROW[row])
    a, b = _flat(paper.to_dict()), _flat(cfg.to_dict())
    changed = sorted(k for k in set(a) | set(b) if a.get(k, 'absent') != b.get(k, 'absent'))
    outside = [k for k in changed if not any(fnmatch.fnmatchcase(k, pattern) for pattern in OVERLAY)]
    assert not outside, f'{row} differs from {PAPER_ROW[row]} outside the overlay: ' + ', '.join(
        f'{k}: {a.get(k, "absent")!r} -> {b.get(k, "absent")!r}' for k in outside)
    # the scale itself, as the grid and README state it
    assert cfg.model.num_classes == len(fashion.NAMES)
    assert cfg.train_dataloader.dataset.classes == cfg.val_dataloader.dataset.classes == fashion.NAMES
    assert cfg.train_dataloader.dataset.data_root == 'data/fashion/imagenet'
    assert cfg.train_cfg.max_epochs == (3 if paper.train_cfg.max_epochs == 200 else 2)
    assert [s.type for s in cfg.param_scheduler] == [s.type for s in paper.param_scheduler]
    if 'distill' in cfg.model:
        # the grid passes the teacher it trained (--cfg-options); no epoch file is written down here
        assert cfg.model.distill.teacher_checkpoint is None
        assert cfg.model.distill.teacher_config == osp.join(CLS, 'fashion_teacher.py')


def test_fashion_widths_are_the_transfer_configs():
    shared = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'fashion.py'))
    assert fashion.NAMES == shared.fashion_classes and len(fashion.CLASSES) == len(fashion.NAMES)
    det = Config.fromfile(osp.join(REPO, 'configs', 'det', 'fashion_faster_rcnn.py'))
    seg = Config.fromfile(osp.join(REPO, 'configs', 'seg', 'fashion_fcn.py'))
    pre = _resolved('fashion_d_efficient').model.backbone
    for backbone in (det.model.backbone, seg.model.backbone):
        assert (backbone.stem_channels, backbone.base_channels) == (pre.stem_channels, pre.base_channels)
    assert det.train_dataloader.dataset.metainfo.classes == fashion.NAMES
    assert seg.train_dataloader.dataset.metainfo.classes == ('background', *fashion.NAMES) == fashion.SEG_CLASSES
