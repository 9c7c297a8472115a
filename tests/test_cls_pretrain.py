"""Integration: tools/pretrain.py configs/cls/resnet50d_tricks.py with every trick on, on a generated
ImageNet-layout dataset of real JPEGs with a tiny teacher: trains, evaluates, checkpoints, resumes,
exports a backbone that loads with weights_only=True, and tests the checkpoint."""
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import classification  # noqa: F401
from backbones import BagResNet
from backbones.registry import MODELS
from classification import lr_schedule
from cls_helpers import REPO, make_shapes_imagenet, run_tool, tensorboard_scalars, tiny_data_options
from engine.results import read_results

CONFIG = osp.join(REPO, 'configs', 'cls', 'resnet50d_tricks.py')


def _scalars(work_dir):
    import glob
    lines = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        lines += [json.loads(line) for line in open(path)]
    return lines


def test_pretrain_all_tricks_resume_export_and_test(tmp_path):
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=5, per_class={'train': 2, 'val': 2}, size=40)
    teacher_cfg = tmp_path / 'teacher.py'
    teacher_cfg.write_text(f"_base_ = '{REPO}/configs/cls/resnet152d_teacher.py'\n"
                           "model = dict(num_classes=5, backbone=dict(depth=18, base_channels=8, stem_channels=16))\n")
    teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
    work = str(tmp_path / 'work')
    opts = tiny_data_options(data, size=32, batch=4, workers=0) + [
        'train_dataloader.num_workers=2', 'train_dataloader.persistent_workers=True',  # multi-worker loading
        'model.num_classes=5', f'model.distill.teacher_config={teacher_cfg}',
        f'model.distill.teacher_checkpoint={tmp_path / "teacher.pth"}',
        'train_cfg.max_epochs=2', 'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
        'default_hooks.logger.interval=1']
    run_tool('pretrain.py', CONFIG, '--work-dir', work, '--cfg-options', *opts)
    for name in ('epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'):
        assert osp.isfile(osp.join(work, name)), name
    assert len([f for f in __import__('os').listdir(work) if f.startswith('best_accuracy_top1')]) == 1

    # the lr the Runner used at each iteration is the config's schedule: linear scaling (0.1 x 4 / 256),
    # warmup over epoch 1 (2 iterations: eta/2, eta), then cosine over epoch 2
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({'train_dataloader.batch_size': 4, 'train_cfg.max_epochs': 2,
                         'param_scheduler.0.end': 1, 'param_scheduler.1.begin': 1})
    expected = lr_schedule(cfg, iters_per_epoch=2, world_size=1)
    eta = 0.1 * 4 / 256
    assert expected == pytest.approx([eta / 2, eta, eta, eta / 2], rel=1e-9)
    logged = [s for s in _scalars(work) if 'lr' in s]
    assert [s['lr'] for s in logged] == pytest.approx(expected, rel=1e-6)
    assert all(torch.isfinite(torch.tensor(s['loss'])) for s in logged)
    # the same curves in TensorBoard (mmengine's TensorboardVisBackend), read back with TensorBoard itself
    board = tensorboard_scalars(work)
    assert [step for step, _ in board['lr']] == [1, 2, 3, 4]
    assert [v for _, v in board['lr']] == pytest.approx(expected, rel=1e-6)  # float32 events
    assert [v for _, v in board['loss']] == pytest.approx([s['loss'] for s in logged], rel=1e-6)
    assert [v for _, v in board['accuracy/top1']] == pytest.approx(
        [s['accuracy/top1'] for s in _scalars(work) if 'accuracy/top1' in s], rel=1e-6)
    val = [s for s in _scalars(work) if 'accuracy/top1' in s]
    assert len(val) == 2 and all(0 <= s['accuracy/top1'] <= 100 and s['accuracy/top5'] == 100.0 for s in val)

    ckpt = torch.load(osp.join(work, 'epoch_2.pth'), map_location='cpu', weights_only=False)
    assert {k.split('.')[0] for k in ckpt['state_dict']} == {'backbone', 'head'}  # no teacher inside
    assert {k for k in ckpt['state_dict'] if k.startswith('head')} == {'head.fc.weight', 'head.fc.bias'}

    # --resume continues from epoch 2 to epoch 3
    run_tool('pretrain.py', CONFIG, '--work-dir', work, '--resume', '--cfg-options',
             *[o if o != 'train_cfg.max_epochs=2' else 'train_cfg.max_epochs=3' for o in opts])
    resumed = torch.load(osp.join(work, 'epoch_3.pth'), map_location='cpu', weights_only=False)
    assert resumed['meta']['epoch'] == 3 and resumed['meta']['iter'] == 6

    # export: plain tensors with BagResNet's own keys, loadable with weights_only=True and via init_cfg
    out = str(tmp_path / 'backbone.pth')
    run_tool('export_backbone.py', osp.join(work, 'epoch_3.pth'), out)
    exported = torch.load(out, weights_only=True)
    reference = BagResNet(depth=50, variant='D', out_indices=(3,))
    assert set(exported) == set(reference.state_dict())
    for k, v in exported.items():
        assert torch.equal(v, resumed['state_dict'][f'backbone.{k}'])
    fresh = BagResNet(depth=50, variant='D', init_cfg=dict(type='Pretrained', checkpoint=out))
    fresh.init_weights()
    assert torch.equal(fresh.layer4[2].conv3.weight, exported['layer4.2.conv3.weight'])

    # test_cls on the checkpoint (no teacher needed) writes the metrics
    run_tool('test_cls.py', CONFIG, osp.join(work, 'epoch_3.pth'), '--work-dir', str(tmp_path / 'test'),
             '--cfg-options', *tiny_data_options(data, size=32, batch=4), 'model.num_classes=5')
    res = read_results(tmp_path / 'test' / 'test_results.json', task='cls')
    assert res['provenance']['num_images'] == 10 and 0 <= res['metrics']['top1'] <= 100
    assert res['metrics']['top5'] == 100.0  # 5 classes
    assert res['provenance']['checkpoint'] == osp.join(work, 'epoch_3.pth') and res['provenance']['iter'] is None
