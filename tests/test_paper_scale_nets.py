"""Paper-size smoke runs of the other two networks' shipped configs through tools/pretrain.py:
Inception-V3 with every trick at 299 px (its Table 6 "+ distill w/ mixup" row: the ResNet teacher sees the
same 299 px batch) and MobileNet (1.0) "+ mixup" at 224 px, 2 training iterations and a validation pass
each on real photos in the ImageNet layout (tests/paper_data.py), then the export of the backbone.

The command lines override only data roots, the batch size, num_classes, the epoch count (and the
warmup/cosine boundaries that follow from it), the logging interval and the teacher files. The tool runs
a config that inherits the shipped one and adds only tests/paper_hooks.py's recorder of the backbone's
real inputs.
"""
from __future__ import annotations

import glob
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from safe_read import load_training_state
from device_caps import amp_choice
from paper_data import make_imagenet_photos, require_real_data
from scale_helpers import REPO, run_tool

CFG = osp.join(REPO, 'configs', 'cls')
NUM_CLASSES = 10
BATCH = 10  # one image per class: 1 iteration per epoch
AUTO = amp_choice('auto')[0]  # the efficient recipe's amp_dtype='auto' on this CPU: bf16 with bf16 instructions
AUTOCAST, CONV_DTYPE = AUTO != 'fp32', {'bf16': 'bfloat16', 'fp16': 'float16', 'fp32': 'float32'}[AUTO]


def instrumented(tmp_path, shipped: str, record: str) -> str:
    base = Config.fromfile(shipped)
    imports = list(base.custom_imports['imports']) + ['paper_hooks']
    path = tmp_path / f'instrumented_{osp.basename(shipped)}'
    path.write_text(f'_base_ = {shipped!r}\n'
                    f'custom_imports = dict(imports={imports!r}, allow_failed_imports=False)\n'
                    f"custom_hooks = [dict(type='RecordBackboneInputs', out={record!r})]\n")
    return str(path)


def recorded(path: str, phase: str, net: str = 'model') -> list[dict]:
    with open(path) as f:
        return [r for r in json.load(f) if r['phase'] == phase and r['net'] == net]


def scalars(work: str) -> list[dict]:
    paths = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    assert len(paths) == 1, paths
    with open(paths[0]) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    require_real_data(fashion=True)
    return make_imagenet_photos(str(tmp_path_factory.mktemp('imagenet')), size=500, num_classes=NUM_CLASSES,
                                per_class={'train': 1, 'val': 1})


def pretrain(tmp_path, config: str, data: str, extra: dict) -> tuple[str, str, dict]:
    shipped = osp.join(CFG, config)
    record, work = str(tmp_path / 'inputs.json'), str(tmp_path / 'work')
    options = {f'{loader}.dataset.data_root': data for loader in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')}
    options.update({'train_dataloader.batch_size': BATCH, 'model.num_classes': NUM_CLASSES,
                    # 2 epochs of 1 iteration: the warmup is epoch 1, the cosine decay epoch 2
                    'train_cfg.max_epochs': 2, 'param_scheduler.0.end': 1, 'param_scheduler.1.begin': 1,
                    'default_hooks.logger.interval': 1, **extra})
    run_tool('pretrain', instrumented(tmp_path, shipped, record), '--work-dir', work, '--cfg-options',
             *[f'{k}={v}' for k, v in options.items()], timeout=900)
    return work, record, options


def check_run(work: str, record: str, size: int, nets: tuple[str, ...]) -> None:
    train = [s for s in scalars(work) if 'loss' in s]
    assert [s['iter'] for s in train] == [1, 2] and all(math.isfinite(s['loss']) for s in train)
    assert [s['lr'] for s in train] == pytest.approx([0.1 * BATCH / 256] * 2, rel=1e-6)  # linear scaling
    val = [s for s in scalars(work) if 'accuracy/top1' in s]
    assert len(val) == 2 and all(0 <= s['accuracy/top1'] <= s['accuracy/top5'] <= 100 for s in val)
    for net in nets:  # full-resolution crops, in the precision auto picks on this CPU
        rec = recorded(record, 'train', net)
        assert [r['iter'] for r in rec] == [1, 2]
        assert all(r['shape'] == [BATCH, 3, size, size] and r['autocast'] == AUTOCAST and r['conv_dtype'] == CONV_DTYPE
                   for r in rec), rec
    val_rec = recorded(record, 'val')
    assert len(val_rec) == 2 and all(r['shape'] == [NUM_CLASSES, 3, size, size] for r in val_rec)


def export_and_reload(tmp_path, work: str, backbone_cfg: dict, n_tensors: int) -> None:
    out = str(tmp_path / 'backbone.pth')
    run_tool('export_backbone', osp.join(work, 'epoch_2.pth'), out)
    exported = torch.load(out, weights_only=True)
    assert len(exported) == n_tensors
    from backbones.registry import MODELS
    backbone = MODELS.build(dict(backbone_cfg, init_cfg=dict(type='Pretrained', checkpoint=out)))
    backbone.init_weights()
    ckpt = load_training_state(osp.join(work, 'epoch_2.pth'))['state_dict']
    assert all(torch.equal(v, ckpt[f'backbone.{k}']) for k, v in backbone.state_dict().items())


def test_inception_v3_every_trick_at_299(photos, tmp_path):
    # the ResNet-152-D teacher config at depth 18, freshly initialised: the same family change as the paper's
    teacher_cfg = tmp_path / 'teacher.py'
    teacher_cfg.write_text(f"_base_ = {osp.join(CFG, 'resnet152d_teacher.py')!r}\n"
                           f'model = dict(num_classes={NUM_CLASSES}, backbone=dict(depth=18))\n')
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, tmp_path / 'teacher.pth')
    work, record, _ = pretrain(tmp_path, 'inception_v3_tricks.py', photos, {
        'model.distill.teacher_config': str(teacher_cfg), 'model.distill.teacher_checkpoint': str(tmp_path / 'teacher.pth')})
    dumped = Config.fromfile(glob.glob(osp.join(work, '*.py'))[0])
    assert dumped.model.backbone.type == 'BagInceptionV3' and dumped.model.dropout == 0.5
    assert dumped.model.mixup_alpha == 0.2 and dumped.model.label_smoothing == 0.1
    assert [t['size'] for t in dumped.val_dataloader.dataset.pipeline[:2]] == [342, 299]
    # student and teacher both get the 299 px (mixed) batch; validation at resize 342 + centre crop 299
    check_run(work, record, 299, ('model', 'teacher'))
    ckpt = load_training_state(osp.join(work, 'epoch_2.pth'))['state_dict']
    assert tuple(ckpt['head.fc.weight'].shape) == (NUM_CLASSES, 2048)
    assert not any(k.startswith(('AuxLogits', 'backbone.AuxLogits', '_teacher')) for k in ckpt)
    export_and_reload(tmp_path, work, dict(dumped.model.backbone), 564)  # 94 convs + 94 BNs x 5 tensors


def test_mobilenet_mixup_at_224(photos, tmp_path):
    work, record, _ = pretrain(tmp_path, 'mobilenet_cosine_ls_mixup.py', photos, {})
    dumped = Config.fromfile(glob.glob(osp.join(work, '*.py'))[0])
    assert dumped.model.backbone.type == 'BagMobileNetV1' and dumped.model.backbone.width == 1.0
    assert [t['size'] for t in dumped.val_dataloader.dataset.pipeline[:2]] == [256, 224]
    check_run(work, record, 224, ('model',))
    ckpt = load_training_state(osp.join(work, 'epoch_2.pth'))['state_dict']
    assert tuple(ckpt['head.fc.weight'].shape) == (NUM_CLASSES, 1024)
    export_and_reload(tmp_path, work, dict(dumped.model.backbone), 162)  # 27 convs + 27 BNs x 5 tensors
