"""tools/train_det.py and tools/test_det.py end to end on the CPU: a small Faster R-CNN from a handed-off
backbone file learns generated shapes; the real VOC2011 photos are over-fitted; bad weights abort."""
import glob
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook

from det_helpers import labelme_voc_tree, make_voc_tree

from backbones import BagResNet
from engine.results import read_results
from user_errors import CheckpointError

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
TINY = osp.join(ROOT, 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')
TINY_BACKBONE = dict(depth=18, variant='D', stem_channels=16, base_channels=16)  # as in TINY
SYNTHETIC_ITERS = 60
SYNTHETIC_MAP = 0.5     # held-out VOC07 11-point mAP@0.5 the synthetic run must exceed
LABELME_ITERS = 45
LABELME_MAP = 0.7       # mAP@0.5 on the three photos it over-fits


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_det, test_det = _tool('train_det'), _tool('test_det')


def _iters(n, warmup=10):
    return [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}', f'param_scheduler.0.end={warmup}',
            f'param_scheduler.1.begin={warmup}', f'param_scheduler.1.end={n}']


def _data_args(data_root):
    return [f'{k}.dataset.data_root={data_root}' for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


class SeenWeights(Exception):
    pass


class BackboneAtStart(Hook):
    """Copies the backbone's weights when training starts (after init, before the first step)."""

    def __init__(self, stop=False):
        self.state, self.stop = None, stop

    def before_train(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.model.backbone.state_dict().items()}
        if self.stop:
            raise SeenWeights('the weights at the start of training were recorded')


def _log_text(work_dir):
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return f.read()


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    """Generated VOC tree; exported backbone file; tools/train_det.py --pretrained on it."""
    tmp = tmp_path_factory.mktemp('det')
    drawn = make_voc_tree(str(tmp), {'trainval': 48, 'test': 16}, size=128, seed=0)
    torch.manual_seed(1)
    exported = BagResNet(**TINY_BACKBONE).state_dict()
    backbone_file = str(tmp / 'backbone.pth')
    torch.save(exported, backbone_file)
    work_dir = str(tmp / 'work')
    runner = train_det.build_runner([
        TINY, '--work-dir', work_dir, '--pretrained', backbone_file, '--cfg-options',
        *_data_args(str(tmp / 'VOCdevkit')), *_iters(SYNTHETIC_ITERS), 'experiment_name=det_synthetic'])
    at_start = BackboneAtStart()
    runner.register_hook(at_start)
    runner.train()
    return dict(tmp=tmp, drawn=drawn, exported=exported, backbone_file=backbone_file, work_dir=work_dir,
                at_start=at_start.state, trained={k: v.clone() for k, v in runner.model.backbone.state_dict().items()})


def test_exported_backbone_is_in_the_detector_when_training_starts(synthetic):
    exported, at_start = synthetic['exported'], synthetic['at_start']
    assert set(at_start) == set(exported)
    for key in ('conv1.0.weight', 'layer1.0.conv1.weight', 'layer4.1.conv2.weight', 'layer2.0.downsample.1.weight'):
        assert torch.equal(at_start[key], exported[key]), key
        assert not torch.equal(synthetic['trained'][key], exported[key]), f'{key} did not train'
    log = _log_text(synthetic['work_dir'])
    n = len(exported)
    assert f'loaded {n}/{n} backbone tensors from {synthetic["backbone_file"]}' in log


def test_synthetic_shapes_are_detected_on_held_out_images(synthetic):
    res = read_results(osp.join(synthetic['work_dir'], 'val_results.json'), task='det')
    prov = res['provenance']
    assert prov['split'] == 'val' and prov['iter'] == SYNTHETIC_ITERS and prov['eval_mode'] == '11points'
    assert prov['num_images'] == 16 and prov['backbone']['pretrained'] == synthetic['backbone_file']
    per_class = res['per_class']['AP50']
    for name in ('aeroplane', 'bus', 'person'):
        drawn = sum(obj == name for _, objs in synthetic['drawn']['test'] for obj, _ in objs)
        assert per_class[name]['num_gts'] == drawn > 0
    assert all(v['num_gts'] == 0 for k, v in per_class.items() if k not in ('aeroplane', 'bus', 'person'))
    with_gts = [v['ap'] for v in per_class.values() if v['num_gts']]
    assert res['metrics']['mAP'] == pytest.approx(sum(with_gts) / 3, abs=1e-4) == res['metrics']['AP50']  # percent
    assert res['metrics']['mAP'] > 100 * SYNTHETIC_MAP, res['metrics']
    assert '| person      | ' in _log_text(synthetic['work_dir'])  # the per-class table is in the log


def test_test_det_reproduces_the_val_map_and_offers_area_mode(synthetic):
    ckpt = osp.join(synthetic['work_dir'], f'iter_{SYNTHETIC_ITERS}.pth')
    val = read_results(osp.join(synthetic['work_dir'], 'val_results.json'), task='det')
    work_dir = str(synthetic['tmp'] / 'test')
    args = [TINY, ckpt, '--work-dir', work_dir, '--cfg-options', *_data_args(str(synthetic['tmp'] / 'VOCdevkit'))]
    metrics = test_det.main(args + ['experiment_name=det_test_11'])
    assert 100 * metrics['pascal_voc/mAP'] == pytest.approx(val['metrics']['mAP'], abs=1e-6)  # mmdet's fraction
    metrics = test_det.main(args + ['experiment_name=det_test_area', '--eval-mode', 'area'])
    res = read_results(osp.join(work_dir, 'test_results.json'), task='det')
    prov = res['provenance']
    assert prov['split'] == 'test' and prov['eval_mode'] == 'area' and prov['checkpoint'] == ckpt
    aps = [v['ap'] for v in res['per_class']['AP50'].values() if v['num_gts']]
    assert res['metrics']['mAP'] == pytest.approx(sum(aps) / len(aps), abs=1e-4)
    assert res['metrics']['mAP'] > 100 * SYNTHETIC_MAP


def test_full_pretraining_checkpoint_hands_over_its_backbone(synthetic, tmp_path):
    from mmengine.logging import HistoryBuffer
    torch.manual_seed(2)
    backbone = BagResNet(**TINY_BACKBONE)
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'], state['head.fc.bias'] = torch.randn(10, 128), torch.zeros(10)
    loss = HistoryBuffer()
    loss.update(0.5)
    ckpt = str(tmp_path / 'epoch_3.pth')
    torch.save({'meta': dict(epoch=3, iter=30, mmengine_version='0.10.7'), 'state_dict': state,
                'message_hub': dict(log_scalars={'train/loss': loss})}, ckpt)
    runner = train_det.build_runner([
        TINY, '--work-dir', str(tmp_path / 'work'), '--pretrained', ckpt, '--cfg-options',
        *_data_args(str(synthetic['tmp'] / 'VOCdevkit')), 'experiment_name=det_handoff_full'])
    at_start = BackboneAtStart(stop=True)
    runner.register_hook(at_start)
    with pytest.raises(SeenWeights):
        runner.train()
    for key, value in backbone.state_dict().items():
        assert torch.equal(at_start.state[key], value), key
    n = len(backbone.state_dict())
    assert f'loaded {n}/{n} backbone tensors from {ckpt}' in _log_text(str(tmp_path / 'work'))


def test_backbone_of_another_depth_stops_before_training(synthetic, tmp_path):
    wrong = str(tmp_path / 'r50.pth')
    torch.save(BagResNet(depth=50, variant='D').state_dict(), wrong)
    work_dir = str(tmp_path / 'work')
    runner = train_det.build_runner([
        TINY, '--work-dir', work_dir, '--pretrained', wrong, '--cfg-options',
        *_data_args(str(synthetic['tmp'] / 'VOCdevkit')), 'experiment_name=det_wrong_depth'])
    with pytest.raises(CheckpointError, match=rf"{wrong} does not fit BagResNet\(depth=18, variant='D'\).*"
                                              r'unexpected keys.*shape mismatches'):
        runner.train()
    assert glob.glob(osp.join(work_dir, '**', '*.pth'), recursive=True) == []


def test_cli_refuses_a_resnet_b_file_for_a_resnet_d_config(synthetic, tmp_path):
    wrong = str(tmp_path / 'r18b.pth')
    torch.save(BagResNet(**dict(TINY_BACKBONE, variant='B')).state_dict(), wrong)
    work_dir = str(tmp_path / 'work')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train_det.py'), TINY, '--work-dir', work_dir, '--pretrained', wrong,
         '--cfg-options', *_data_args(str(synthetic['tmp'] / 'VOCdevkit'))],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f"{wrong} does not fit BagResNet(depth=18, variant='D')" in proc.stderr
    assert 'missing keys (first: conv1.0.weight' in proc.stderr
    assert glob.glob(osp.join(work_dir, '**', '*.pth'), recursive=True) == []


def test_real_voc2011_photos_are_overfitted(tmp_path):
    data_root = labelme_voc_tree(str(tmp_path))
    work_dir = str(tmp_path / 'work')
    split = ['ann_file=VOC2011/ImageSets/Main/trainval.txt', 'data_prefix.sub_data_root=VOC2011/']
    opts = [f'{loader}.dataset.{kv}' for loader in ('train_dataloader', 'val_dataloader') for kv in split]
    runner = train_det.main([
        TINY, '--work-dir', work_dir, '--cfg-options', *_data_args(data_root), *opts,
        'train_dataloader.batch_size=3', 'train_dataloader.dataset.pipeline.3.prob=0.0',  # no flip
        'train_dataloader.dataset.pipeline.2.scale=(192,192)', 'val_dataloader.dataset.pipeline.1.scale=(192,192)',
        *_iters(LABELME_ITERS), 'experiment_name=det_labelme'])
    res = read_results(osp.join(work_dir, 'val_results.json'), task='det')
    per_class = res['per_class']['AP50']
    assert {k: v['num_gts'] for k, v in per_class.items() if v['num_gts']} == {'person': 6, 'bus': 2, 'car': 1}
    assert res['provenance']['num_images'] == 3
    assert res['metrics']['mAP'] > 100 * LABELME_MAP, per_class
    assert runner.iter == LABELME_ITERS
