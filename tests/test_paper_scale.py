"""Paper-size smoke runs of the shipped configs through the real tools: ResNet-50-D with every
trick at 224 px (Table 6), one Table 7 row (Faster R-CNN R-50-D FPN, mmdet's 1000x600 VOC07+12 recipe) and
one Table 8 row (FCN R-50-D8, 512x512 ADE20K crops), 2 training iterations and a validation pass each, on
real photos written in the real data layouts (tests/paper_data.py).

The command lines override only data roots, data sizes (batch sizes), iteration counts (and the epoch
boundaries of the pretraining schedule that follow from them), num_classes, the logging interval and the
teacher files; each test reads back the config the Runner dumped and checks that everything else is the
shipped config. The tool runs an instrumenting config that inherits the shipped one and adds only
``tests/paper_hooks.py``'s recorder of the backbone's real inputs (shape, dtype, autocast, memory format).
"""
from __future__ import annotations

import glob
import json
import math
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from safe_read import load_training_state
from device_caps import amp_choice
from engine.results import read_results
from paper_data import make_ade_photos, make_imagenet_photos, make_voc0712, read_voc_objects, require_real_data
from scale_helpers import REPO, run_tool

CLS_CONFIG = osp.join(REPO, 'configs', 'cls', 'resnet50d_tricks.py')
TEACHER_BASE = osp.join(REPO, 'configs', 'cls', 'resnet152d_teacher.py')
DET_CONFIG = osp.join(REPO, 'configs', 'det', 'faster-rcnn_r50d-cosine_fpn_voc0712.py')
SEG_CONFIG = osp.join(REPO, 'configs', 'seg', 'fcn_r50d-cosine_ade20k.py')
NUM_CLASSES = 10  # Fashion-MNIST classes of the generated ImageNet folder
CLS_BATCH = 10  # one image per class: 1 iteration per epoch (the config's 32 reduced to the data)
# what amp_dtype='auto' (the efficient recipe, --amp) trains in on this CPU: bf16 autocast with bf16 instructions
AUTO = amp_choice('auto')[0]
AUTOCAST, CONV_DTYPE = AUTO != 'fp32', {'bf16': 'bfloat16', 'fp16': 'float16', 'fp32': 'float32'}[AUTO]


def instrumented(tmp_path, shipped: str, record: str) -> str:
    """A config that is ``shipped`` plus the input recorder (and nothing else)."""
    base = Config.fromfile(shipped)
    imports = list(base.custom_imports['imports']) + ['paper_hooks']
    hooks = [dict(h) for h in base.get('custom_hooks') or []] + [dict(type='RecordBackboneInputs', out=record)]
    for h in hooks:
        h.pop('_scope_', None)
    path = tmp_path / f'instrumented_{osp.basename(shipped)}'
    path.write_text(f'_base_ = {shipped!r}\n'
                    f'custom_imports = dict(imports={imports!r}, allow_failed_imports=False)\n'
                    f'custom_hooks = {hooks!r}\n')
    return str(path)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if k != '_scope_'}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def assert_shipped_config(work_dir: str, shipped: str, options: dict, pretrained: str | None = None,
                          amp: bool = False) -> Config:
    """The config the Runner dumped is ``shipped`` + ``options`` (+ --pretrained / --amp) + the recorder."""
    dumped = glob.glob(osp.join(work_dir, '*.py'))
    assert len(dumped) == 1, dumped
    actual = Config.fromfile(dumped[0])
    expected = Config.fromfile(shipped)
    expected.merge_from_dict(options)
    a, e = _plain(actual.to_dict()), _plain(expected.to_dict())
    assert [h['type'] for h in a.pop('custom_hooks')] == \
        [h['type'] for h in e.pop('custom_hooks', [])] + ['RecordBackboneInputs']
    assert a.pop('custom_imports')['imports'] == e.pop('custom_imports')['imports'] + ['paper_hooks']
    for key in ('work_dir', 'launcher', 'filename'):
        a.pop(key, None), e.pop(key, None)
    if pretrained:
        assert a['model']['backbone'].pop('init_cfg') == dict(type='Pretrained', checkpoint=pretrained)
        e['model']['backbone'].pop('init_cfg')
    if amp:
        assert a['optim_wrapper'].pop('type') == 'MixedPrecisionOptimWrapper'
        e['optim_wrapper'].pop('type')
    for key in sorted(set(a) | set(e)):
        assert a.get(key) == e.get(key), f'{key}: run {a.get(key)!r} != shipped {e.get(key)!r}'
    return actual


def train_log(work_dir: str) -> str:
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return f.read()


def train_scalars(work_dir: str) -> list[dict]:
    paths = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(paths) == 1, paths
    with open(paths[0]) as f:
        return [json.loads(line) for line in f]


def recorded(path: str, phase: str, net: str = 'model') -> list[dict]:
    with open(path) as f:
        return [r for r in json.load(f) if r['phase'] == phase and r['net'] == net]


def assert_loaded_backbone(log: str, backbone_file: str) -> int:
    found = re.findall(r'loaded (\d+)/(\d+) backbone tensors from (\S+)', log)
    assert found, 'no "loaded N/M backbone tensors" line in the log'
    n, m, path = found[-1]
    assert path == backbone_file and n == m
    assert int(n) == len(torch.load(backbone_file, weights_only=True)) == 330  # every tensor of a ResNet-50-D
    return int(n)


@pytest.fixture(scope='module')
def pretraining(tmp_path_factory):
    """tools/pretrain.py configs/cls/resnet50d_tricks.py with a ResNet-18-D teacher on real 500-px photos,
    then tools/export_backbone.py: the backbone file of the two transfer tests."""
    require_real_data(fashion=True)
    tmp = tmp_path_factory.mktemp('paper_cls')
    data = make_imagenet_photos(str(tmp / 'imagenet'), size=500, num_classes=NUM_CLASSES,
                                per_class={'train': 1, 'val': 1})
    # the teacher: the shipped teacher config at depth 18 (instead of 152), its freshly initialised weights
    teacher_cfg = tmp / 'teacher.py'
    teacher_cfg.write_text(f'_base_ = {TEACHER_BASE!r}\n'
                           f'model = dict(num_classes={NUM_CLASSES}, backbone=dict(depth=18))\n')
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    teacher = MODELS.build(Config.fromfile(str(teacher_cfg)).model)
    torch.save({'meta': {}, 'state_dict': teacher.state_dict()}, tmp / 'teacher.pth')
    record, work = str(tmp / 'inputs.json'), str(tmp / 'work')
    options = {f'{loader}.dataset.data_root': data for loader in ('train_dataloader', 'val_dataloader',
                                                                  'test_dataloader')}
    options.update({
        'train_dataloader.batch_size': CLS_BATCH, 'model.num_classes': NUM_CLASSES,
        'model.distill.teacher_config': str(teacher_cfg), 'model.distill.teacher_checkpoint': str(tmp / 'teacher.pth'),
        # 2 epochs of 1 iteration: the warmup is epoch 1, the cosine decay epoch 2
        'train_cfg.max_epochs': 2, 'param_scheduler.0.end': 1, 'param_scheduler.1.begin': 1,
        'default_hooks.logger.interval': 1})
    run_tool('pretrain', instrumented(tmp, CLS_CONFIG, record), '--work-dir', work, '--cfg-options',
             *[f'{k}={v}' for k, v in options.items()], timeout=600)
    backbone = str(tmp / 'backbone.pth')
    run_tool('export_backbone', osp.join(work, 'epoch_2.pth'), backbone)
    return dict(tmp=tmp, data=data, work=work, record=record, options=options, backbone=backbone,
                teacher_cfg=str(teacher_cfg))


def test_resnet50d_tricks_at_224(pretraining):
    p = pretraining
    sizes = {Image.open(f).size for f in glob.glob(osp.join(p['data'], '*', '*', '*.JPEG'))}
    assert len(glob.glob(osp.join(p['data'], 'train', '*', '*.JPEG'))) == CLS_BATCH
    assert {max(s) for s in sizes} == {500} and min(min(s) for s in sizes) >= 330  # ImageNet-size photos
    cfg = assert_shipped_config(p['work'], CLS_CONFIG, p['options'])
    assert cfg.optim_wrapper.type == 'MixedPrecisionOptimWrapper' and cfg.model.mixup_alpha == 0.2
    assert cfg.model.label_smoothing == 0.1 and cfg.model.distill.temperature == 20.0

    log = train_log(p['work'])
    assert re.search(r'distillation teacher: \S+teacher\.py, (\d+)/\1 tensors', log)
    assert 'Epoch(train) [1][1/1]' in log and 'Epoch(train) [2][1/1]' in log
    train = [s for s in train_scalars(p['work']) if 'loss' in s]
    assert [s['iter'] for s in train] == [1, 2]
    eta = 0.1 * CLS_BATCH / 256  # linear scaling of lr 0.1 per 256 images
    # warmup over 1 iteration ends at eta, cosine decay starts from it
    assert [s['lr'] for s in train] == pytest.approx([eta, eta], rel=1e-6)
    for s in train:
        # hard_weight 0.5 x (smoothed, mixed) cross entropy + 0.5 x T^2 x cross entropy to the teacher's
        # softened output at T = 20: near-uniform logits make the second about 0.5 x 400 x ln(10)
        assert math.isfinite(s['loss']) and 0.9 * 200 * math.log(10) < s['loss'] < 1.1 * 200 * math.log(10) + 5
    val = [s for s in train_scalars(p['work']) if 'accuracy/top1' in s]
    assert len(val) == 2 and all(0 <= s['accuracy/top1'] <= s['accuracy/top5'] <= 100 for s in val)

    # 224 x 224 crops into both networks, auto's precision in training (bf16 autocast on a bf16 CPU)
    for net in ('model', 'teacher'):
        rec = recorded(p['record'], 'train', net)
        assert [r['iter'] for r in rec] == [1, 2]
        assert all(r['shape'] == [CLS_BATCH, 3, 224, 224] and r['autocast'] == AUTOCAST
                   and r['conv_dtype'] == CONV_DTYPE for r in rec), rec
    val_rec = recorded(p['record'], 'val')
    assert len(val_rec) == 2 and all(r['shape'] == [NUM_CLASSES, 3, 224, 224] for r in val_rec)
    # the convolutions run in the memory format the configs' channels_last switch names
    teacher_nhwc = Config.fromfile(p['teacher_cfg']).model.backbone.get('channels_last', False)
    assert all(r['channels_last'] == cfg.model.backbone.get('channels_last', False)
               for r in recorded(p['record'], 'train') + val_rec)
    assert all(r['channels_last'] == teacher_nhwc for r in recorded(p['record'], 'train', 'teacher'))

    # the checkpoint: student only (no teacher), 10-way head on the 2048-channel ResNet-50-D
    ckpt = load_training_state(osp.join(p['work'], 'epoch_2.pth'))
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 2
    assert tuple(ckpt['state_dict']['head.fc.weight'].shape) == (NUM_CLASSES, 2048)
    assert {k.split('.')[0] for k in ckpt['state_dict']} == {'backbone', 'head'}
    exported = torch.load(p['backbone'], weights_only=True)
    assert torch.equal(exported['layer4.2.conv3.weight'], ckpt['state_dict']['backbone.layer4.2.conv3.weight'])
    # ... and it loads in the test tool, which evaluates it at the paper's 224-px centre crop
    out = p['tmp'] / 'test'
    roots = [f'{k}={v}' for k, v in p['options'].items() if 'data_root' in k]
    run_tool('test_cls', CLS_CONFIG, osp.join(p['work'], 'epoch_2.pth'), '--work-dir', str(out), '--cfg-options',
             *roots, f'model.num_classes={NUM_CLASSES}', timeout=300)
    res = read_results(out / 'test_results.json', task='cls')
    assert res['provenance']['num_images'] == NUM_CLASSES
    assert 0 <= res['metrics']['top1'] <= res['metrics']['top5'] <= 100
    # one image per class: each class's top-1 is 0 or 100, and their mean is the top-1
    per_class = res['per_class']['top1']
    assert len(per_class) == NUM_CLASSES and set(per_class.values()) <= {0.0, 100.0}
    assert sum(per_class.values()) / NUM_CLASSES == pytest.approx(res['metrics']['top1'])


def test_faster_rcnn_r50d_voc0712_at_1000x600(pretraining, tmp_path):
    devkit = make_voc0712(str(tmp_path))
    sizes = {Image.open(f).size for f in glob.glob(osp.join(devkit, '*', 'JPEGImages', '*.jpg'))}
    assert sizes == {(500, 375), (500, 338)}  # VOC's own image sizes
    record, work, backbone = str(tmp_path / 'inputs.json'), str(tmp_path / 'work'), pretraining['backbone']
    options = {'train_dataloader.dataset.dataset.datasets.0.data_root': devkit,
               'train_dataloader.dataset.dataset.datasets.1.data_root': devkit,
               'val_dataloader.dataset.data_root': devkit, 'test_dataloader.dataset.data_root': devkit,
               # 2 iterations instead of 4 epochs, validation (and checkpoint) after the second
               'train_cfg._delete_': True, 'train_cfg.type': 'IterBasedTrainLoop', 'train_cfg.max_iters': 2,
               'train_cfg.val_interval': 2, 'default_hooks.checkpoint.by_epoch': False,
               'log_processor.by_epoch': False, 'default_hooks.logger.interval': 1}
    run_tool('train_det', instrumented(tmp_path, DET_CONFIG, record), '--pretrained', backbone, '--work-dir', work,
             '--cfg-options', *[f'{k}={v}' for k, v in options.items()], timeout=900)
    cfg = assert_shipped_config(work, DET_CONFIG, options, pretrained=backbone)
    train_set = cfg.train_dataloader.dataset
    assert train_set.type == 'RepeatDataset' and train_set.times == 3 and cfg.train_dataloader.batch_size == 2
    assert [d.ann_file for d in train_set.dataset.datasets] == ['VOC2007/ImageSets/Main/trainval.txt',
                                                                'VOC2012/ImageSets/Main/trainval.txt']

    log = train_log(work)
    assert_loaded_backbone(log, backbone)
    assert 'Iter(train) [1/2]' in log and 'Iter(train) [2/2]' in log
    train = [s for s in train_scalars(work) if 'loss' in s]
    assert [s['iter'] for s in train] == [1, 2]
    assert all(math.isfinite(s[k]) for s in train for k in ('loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls',
                                                                 'loss_bbox'))
    # freshly initialised heads: the RPN's objectness is binary cross entropy at p = 0.5 (ln 2), the R-CNN
    # classifier a 21-way cross entropy near ln 21
    assert train[0]['loss_rpn_cls'] == pytest.approx(math.log(2), abs=0.05)
    assert train[0]['loss_cls'] == pytest.approx(math.log(21), abs=0.3)
    assert train[0]['lr'] == pytest.approx(0.01)

    # mmdet's VOC pipeline: the shorter side to 600 (the longer then <= 1000), padded to multiples of 32:
    # 500 x 375 -> 800 x 600 and 500 x 338 -> 888 x 600, batched as 608 x 800 or 608 x 896
    rec = recorded(record, 'train')
    assert [r['iter'] for r in rec] == [1, 2]
    assert all(r['shape'][:3] == [2, 3, 608] and r['shape'][3] in (800, 896) for r in rec), rec
    assert [r['shape'] for r in recorded(record, 'val')] == [[1, 3, 608, 800]]
    assert all(r['channels_last'] == cfg.model.backbone.get('channels_last', False)
               for r in rec + recorded(record, 'val'))

    # checkpoint of iteration 2: the frozen stem and stage 1 (frozen_stages=1) are still the pretrained
    # tensors, stage 4 was trained
    ckpt = load_training_state(osp.join(work, 'iter_2.pth'))
    state, start = ckpt['state_dict'], torch.load(backbone, weights_only=True)
    assert ckpt['meta']['iter'] == 2
    assert tuple(state['roi_head.bbox_head.fc_cls.weight'].shape) == (21, 1024)
    for key in ('conv1.0.weight', 'layer1.0.conv1.weight', 'layer1.2.conv3.weight'):
        assert torch.equal(state[f'backbone.{key}'], start[key]), key
    assert not torch.equal(state['backbone.layer4.0.conv2.weight'], start['layer4.0.conv2.weight'])

    res = read_results(osp.join(work, 'val_results.json'), task='det')
    prov = res['provenance']
    assert set(res['metrics']) == {'mAP', 'AP50'} and prov['eval_mode'] == '11points'
    assert 0 <= res['metrics']['mAP'] <= 100 and prov['num_images'] == 1 and prov['iter'] == 2
    assert prov['backbone'] == dict(type='bagtricks.BagResNet', depth=50, variant='D', pretrained=backbone)
    gts = {}
    for name, _ in read_voc_objects(osp.join(devkit, 'VOC2007', 'Annotations', '000003.xml')):
        gts[name] = gts.get(name, 0) + 1
    assert gts == {'bus': 2, 'car': 1}
    assert {c: v['num_gts'] for c, v in res['per_class']['AP50'].items() if v['num_gts']} == gts
    assert len(res['per_class']['AP50']) == 20

    # the README's test command on the shipped config: the checkpoint loads (strictly) and gives exactly
    # the detections the validation after iteration 2 saw
    out = tmp_path / 'test'
    run_tool('test_det', DET_CONFIG, osp.join(work, 'iter_2.pth'), '--work-dir', str(out), '--cfg-options',
             f'test_dataloader.dataset.data_root={devkit}', timeout=600)
    test = read_results(out / 'test_results.json', task='det')
    assert test['provenance']['split'] == 'test' and test['provenance']['checkpoint'] == osp.join(work, 'iter_2.pth')
    assert test['metrics'] == res['metrics'] and test['per_class'] == res['per_class']


def test_fcn_r50d_ade20k_at_512x512(pretraining, tmp_path):
    data_root = make_ade_photos(str(tmp_path), n_train=2, n_val=1, size=(683, 512))
    assert {Image.open(f).size for f in glob.glob(osp.join(data_root, 'images', '*', '*.jpg'))} == {(683, 512)}
    record, work, backbone = str(tmp_path / 'inputs.json'), str(tmp_path / 'work'), pretraining['backbone']
    options = {f'{loader}.dataset.data_root': data_root for loader in ('train_dataloader', 'val_dataloader',
                                                                       'test_dataloader')}
    # batch 1 instead of 4 (CPU time), 2 of the 80k iterations, validation after the second
    options.update({'train_dataloader.batch_size': 1, 'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                    'default_hooks.logger.interval': 1})
    # --amp as in the README's Table 8 command (amp_dtype auto: bf16 autocast on a bf16 CPU, else fp32)
    run_tool('train_seg', instrumented(tmp_path, SEG_CONFIG, record), '--amp', '--pretrained', backbone,
             '--work-dir', work, '--cfg-options', *[f'{k}={v}' for k, v in options.items()], timeout=900)
    cfg = assert_shipped_config(work, SEG_CONFIG, options, pretrained=backbone, amp=True)
    assert cfg.crop_size == (512, 512) and cfg.model.backbone.dilations == (1, 1, 2, 4)

    log = train_log(work)
    assert_loaded_backbone(log, backbone)
    assert 'Iter(train) [1/2]' in log and 'Iter(train) [2/2]' in log
    train = [s for s in train_scalars(work) if 'loss' in s]
    assert [s['iter'] for s in train] == [1, 2]
    for s in train:
        # mmseg averages the cross entropy over every pixel (ignored ones count 0): at most ln(150) at init
        assert all(math.isfinite(s[k]) for k in ('loss', 'decode.loss_ce', 'aux.loss_ce'))
        assert 0 < s['decode.loss_ce'] < 1.2 * math.log(150) and 0 < s['aux.loss_ce'] < 0.4 * 1.2 * math.log(150)

    # 512 x 512 crops (RandomResize + RandomCrop, padded to crop_size) in auto's precision; validation at the whole
    # 683 x 512 image (Resize to fit 2048 x 512 keeps it), fp32
    rec = recorded(record, 'train')
    assert [r['iter'] for r in rec] == [1, 2]
    assert all(r['shape'] == [1, 3, 512, 512] and r['autocast'] == AUTOCAST and r['conv_dtype'] == CONV_DTYPE
               for r in rec), rec
    assert [r['shape'] for r in recorded(record, 'val')] == [[1, 3, 512, 683]]
    assert all(r['channels_last'] == cfg.model.backbone.get('channels_last', False)
               for r in rec + recorded(record, 'val'))

    ckpt = load_training_state(osp.join(work, 'iter_2.pth'))
    assert ckpt['meta']['iter'] == 2
    assert tuple(ckpt['state_dict']['decode_head.conv_seg.weight'].shape) == (150, 512, 1, 1)
    start = torch.load(backbone, weights_only=True)
    assert not torch.equal(ckpt['state_dict']['backbone.layer4.0.conv2.weight'], start['layer4.0.conv2.weight'])

    res = read_results(osp.join(work, 'val_results.json'), task='seg')
    prov = res['provenance']
    assert set(res['metrics']) == {'pixAcc', 'mIoU', 'mAcc'} and prov['num_images'] == 1 and prov['iter'] == 2
    assert all(0 <= v <= 100 for v in res['metrics'].values()) and prov['backbone']['pretrained'] == backbone
    iou = res['per_class']['IoU']
    assert len(iou) == 150
    # every class of the validation label map has an IoU (the image is a crop of the bus-and-car photo)
    from mmseg.datasets import ADE20KDataset
    names = [c.strip() for c in ADE20KDataset.METAINFO['classes']]
    (label_file,) = glob.glob(osp.join(data_root, 'annotations', 'validation', '*.png'))
    present = {names[v - 1] for v in np.unique(np.asarray(Image.open(label_file))) if v}
    assert present and present <= {'bus', 'car'}
    assert all(iou[c] is not None and 0 <= iou[c] <= 100 for c in present)

    # the README's test command on the shipped config: the checkpoint loads (strictly) and segments the
    # validation image exactly as the validation after iteration 2 did
    out = tmp_path / 'test'
    run_tool('test_seg', SEG_CONFIG, osp.join(work, 'iter_2.pth'), '--work-dir', str(out), '--cfg-options',
             f'test_dataloader.dataset.data_root={data_root}', timeout=600)
    test = read_results(out / 'test_results.json', task='seg')
    assert test['provenance']['num_images'] == 1
    assert test['metrics'] == res['metrics'] and test['per_class'] == res['per_class']
