"""Segmentation transfer: mmseg's FCN-D8 with our backbone, trained and tested on CPU through
tools/train_seg.py and tools/test_seg.py, on a generated ADEChallengeData2016 tree and on real VOC photos."""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from PIL import Image

import seg_helpers as h
from backbones import BagResNet
from engine.results import read_results
from user_errors import CheckpointError

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY = osp.join(REPO, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')
sys.path.insert(0, osp.join(REPO, 'tools'))
import test_seg  # noqa: E402
import train_seg  # noqa: E402

import segmentation  # noqa: E402  (registers the glue in mmseg's registries)
from segmentation import SegLayoutError  # noqa: E402


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    # The test machine's 2 cores are shared: two OpenMP threads spin-wait and run ~10x slower than one.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def data_options(data_root: str) -> list[str]:
    return [f'{loader}.dataset.data_root={data_root}' for loader in
            ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def read_json(path):
    return read_results(path, task='seg')


def log_text(work_dir: str) -> str:
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert logs, f'no log file under {work_dir}'
    return open(sorted(logs)[-1]).read()


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return h.make_ade_tree(str(tmp_path_factory.mktemp('ade')), n_train=32, n_val=8)


@pytest.fixture(scope='module')
def ade_run(ade_root, tmp_path_factory):
    work = str(tmp_path_factory.mktemp('ade_work'))
    train_seg.main([TINY, '--work-dir', work, '--cfg-options', *data_options(ade_root)])
    return work, read_json(osp.join(work, 'val_results.json'))


def constant_prediction_miou(data_root: str, value: int) -> float:
    """mIoU (%) on the validation maps of predicting file value ``value`` everywhere: a chance level."""
    labels = np.concatenate([np.array(Image.open(p)).ravel() for p in
                             sorted(glob.glob(osp.join(data_root, 'annotations', 'validation', '*.png')))])
    labels = labels[labels != 0]  # "other" is ignored
    present = np.unique(labels)
    ious = [np.mean(labels == value) if c == value else 0.0 for c in present]
    return 100 * float(np.mean(ious))


# (a) generated ADE20K tree: small FCN-D8 learns the scenes and generalises to held-out images
def test_fcn_learns_generated_ade20k(ade_run, ade_root):
    work, results = ade_run
    chance = constant_prediction_miou(ade_root, h.WALL)  # the most frequent class everywhere: 9.1
    assert chance < 20
    m = results['metrics']
    # 60 iterations measured 81.6-84.7 mIoU, 93.3-94.4 aAcc on the 8 held-out images
    assert m['mIoU'] >= 60 and m['mIoU'] > 3 * chance, (m, chance)
    assert m['pixAcc'] >= 85
    iou = results['per_class']['IoU']
    for value, name in h.CLASS_NAMES.items():
        assert iou[name] >= 30, (name, iou[name])  # the tree disk too, not just the bands
    assert iou['building'] is None  # absent from ground truth and predictions
    # file values 1, 3, 4, 5 became classes wall, sky, floor, tree (reduce_zero_label); 0 was ignored
    acc = results['per_class']['Acc']
    assert {c for c, v in acc.items() if v is not None} == set(h.CLASS_NAMES.values())
    prov = results['provenance']
    assert prov['num_images'] == 8 and prov['iter'] == 60 and prov['backbone']['pretrained'] is None
    assert prov['split'] == 'val' and set(m) == {'pixAcc', 'mIoU', 'mAcc'}
    # the means of the per-class tables (absent classes skipped), unrounded; the log has mmseg's rounding
    assert m['mIoU'] == pytest.approx(np.mean([v for v in iou.values() if v is not None]), abs=1e-9)
    log = log_text(work)
    assert 'per class results:' in log and '|         tree        |' in log
    assert f"mIoU: {round(m['mIoU'], 2):.4f}" in log


def test_test_seg_reproduces_final_validation(ade_run, ade_root, tmp_path):
    work, trained = ade_run
    ckpt = osp.join(work, 'iter_60.pth')
    assert osp.isfile(ckpt)
    test_seg.main([TINY, ckpt, '--work-dir', str(tmp_path), '--cfg-options', *data_options(ade_root)])
    tested = read_json(str(tmp_path / 'test_results.json'))
    assert tested['metrics'] == trained['metrics']
    assert tested['per_class'] == trained['per_class']
    assert tested['provenance']['checkpoint'] == ckpt and tested['provenance']['split'] == 'test'
    assert tested['provenance']['iter'] is None  # a test run trains nothing
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        test_seg.main([TINY, str(tmp_path / 'nope.pth')])


# (b) real photos: the three VOC2011 images of labelme-examples through mmseg's PascalVOCDataset
def test_fcn_overfits_real_voc_photos(tmp_path):
    data_root = h.make_voc_tree(str(tmp_path))
    if data_root is None:
        pytest.skip(f'Debian package labelme-examples not installed ({h.VOC_SRC} missing)')
    cfg = h.write_voc_config(str(tmp_path / 'voc_tiny.py'), data_root, size=256, max_iters=300)
    train_seg.main([cfg, '--work-dir', str(tmp_path / 'work'), '--cfg-options', 'optim_wrapper.optimizer.lr=0.1'])
    results = read_json(str(tmp_path / 'work' / 'val_results.json'))
    iou, acc = results['per_class']['IoU'], results['per_class']['Acc']
    # the palette PNGs were read as class indices: the ground truth holds exactly these photos' 7 classes
    assert {c for c, v in acc.items() if v is not None} == {
        'background', 'bottle', 'bus', 'car', 'chair', 'person', 'sofa'}
    assert results['provenance']['num_images'] == 3
    m = results['metrics']
    # measured: mIoU 80.4 (bottle, 873 pixels, stays 0), aAcc 97.9
    assert m['pixAcc'] >= 93 and m['mIoU'] >= 60, m
    for name in ('background', 'bus', 'chair', 'person'):
        assert iou[name] >= 75, (name, iou[name])


# (c) hand-off: the pretraining tool's file lands in the FCN backbone before training starts
class SnapshotBackbone(Hook):
    def before_train(self, runner):
        self.state = {k: v.clone() for k, v in runner.model.backbone.state_dict().items()}


def exported_backbone(**kwargs) -> dict:
    """What the pretraining export writes: BagResNet's own state dict, ImageNet strides (no dilation)."""
    state = BagResNet(depth=18, variant='D', stem_channels=16, base_channels=16, **kwargs).state_dict()
    gen = torch.Generator().manual_seed(0)
    for k in state:
        if k.endswith(('running_mean', 'bias')):  # non-default values a fresh model cannot have
            state[k] = torch.randn(state[k].shape, generator=gen)
    return state


@pytest.mark.parametrize('layout', ['exported', 'full_checkpoint'])
def test_pretrained_file_is_in_backbone_before_training(layout, ade_root, tmp_path):
    state = exported_backbone()
    path = str(tmp_path / 'backbone.pth')
    if layout == 'exported':
        torch.save(state, path)
    else:  # a whole pretraining checkpoint: mmengine layout, backbone.* and head.* keys
        full = {f'backbone.{k}': v for k, v in state.items()}
        full.update({'head.fc.weight': torch.zeros(10, 128), 'head.fc.bias': torch.zeros(10)})
        torch.save({'meta': {'iter': 5}, 'state_dict': full}, path)
    runner = train_seg.build_runner([TINY, '--pretrained', path, '--work-dir', str(tmp_path / 'work'),
                                     '--cfg-options', *data_options(ade_root), 'train_cfg.max_iters=1'])
    snap = SnapshotBackbone()
    runner.register_hook(snap, priority='VERY_HIGH')
    runner.train()
    assert set(snap.state) == set(state)
    for k, v in state.items():
        assert torch.equal(snap.state[k], v), k
    # the snapshot precedes training: one SGD step has moved the weights since
    assert not torch.equal(runner.model.backbone.conv1[0].weight, state['conv1.0.weight'])
    assert f'loaded {len(state)}/{len(state)} backbone tensors from {path}' in log_text(str(tmp_path / 'work'))


def test_pretrained_file_of_another_architecture_is_a_clear_error(ade_root, tmp_path):
    path = str(tmp_path / 'resnet18b.pth')
    torch.save(BagResNet(depth=18, variant='B', stem_channels=16, base_channels=16).state_dict(), path)
    runner = train_seg.build_runner([TINY, '--pretrained', path, '--work-dir', str(tmp_path / 'work'),
                                     '--cfg-options', *data_options(ade_root), 'train_cfg.max_iters=1'])
    with pytest.raises(CheckpointError, match=r'resnet18b\.pth does not fit BagResNet\(depth=18, '
                                              r"variant='D'\): \d+ missing keys \(first: conv1\.0\.weight"):
        runner.train()
    with pytest.raises(FileNotFoundError, match='--pretrained: no such file'):
        train_seg.build_runner([TINY, '--pretrained', str(tmp_path / 'missing.pth')])


# (d) layout errors name the file and say what was expected
def build_val_dataset(data_root: str):
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(TINY).val_dataloader.dataset
    cfg.data_root = data_root
    init_default_scope('mmseg')
    return DATASETS.build(cfg)


@pytest.fixture
def small_ade(tmp_path):
    return h.make_ade_tree(str(tmp_path), n_train=2, n_val=3, seed=1)


def test_missing_validation_images_is_a_clear_error(small_ade, tmp_path):
    os.rename(osp.join(small_ade, 'images', 'validation'), osp.join(small_ade, 'images', 'val'))
    with pytest.raises(SegLayoutError, match=r'ADE20K image folder missing: .*images/validation .*expected '
                                             r'ADEChallengeData2016/\{images,annotations\}'):
        build_val_dataset(small_ade)
    # the same error from the training tool, before any iteration
    with pytest.raises(SegLayoutError, match='images/validation'):
        train_seg.main([TINY, '--work-dir', str(tmp_path / 'work'), '--cfg-options', *data_options(small_ade)])


def test_image_without_label_map_is_a_clear_error(small_ade):
    missing = osp.join(small_ade, 'annotations', 'validation', 'ADE_val_00000002.png')
    os.remove(missing)
    with pytest.raises(SegLayoutError, match=rf'1 of 3 images .* have no label map \(first: {re.escape(missing)}\)'):
        build_val_dataset(small_ade)


def test_label_map_of_another_size_is_a_clear_error(small_ade):
    ds = build_val_dataset(small_ade)
    assert len(ds) == 3 and ds[0]['data_samples'].gt_sem_seg.data.shape[-2:] == (80, 96)
    bad = osp.join(small_ade, 'annotations', 'validation', 'ADE_val_00000003.png')
    Image.fromarray(np.ones((80, 90), np.uint8)).save(bad)
    with pytest.raises(SegLayoutError, match=rf'{re.escape(bad)}: label map is 90x80 \(WxH\) but its image .*'
                                             r'ADE_val_00000003\.jpg is 96x80'):
        ds[2]


def test_label_values_outside_ade_range_are_a_clear_error(small_ade):
    path = osp.join(small_ade, 'annotations', 'validation', 'ADE_val_00000001.png')
    label = np.array(Image.open(path))
    label[:2, :2] = 255  # the ignore value and ADE's 0 ("other") and 150 are all fine
    label[2:4, :2] = 150
    Image.fromarray(label).save(path)
    ds = build_val_dataset(small_ade)
    gt = ds[0]['data_samples'].gt_sem_seg.data
    assert gt[0, 0, 0] == 255 and gt[0, 2, 0] == 149  # reduce_zero_label: file value 150 is class 149
    label[5, 5], label[6, 6] = 151, 200
    Image.fromarray(label).save(path)
    with pytest.raises(SegLayoutError, match=rf'{re.escape(path)}: label values \[151, 200\] outside 0\.\.150 '
                                             r'and not the ignore value 255'):
        ds[0]
