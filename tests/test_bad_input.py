"""Bad input across the three training tools: each broken input stops the tool before training with
exactly one ``error: ...`` line on stderr naming the problem (no traceback), a non-zero exit status,
and nothing in the work dir that a later ``--resume`` would pick up (no *.pth, *.part, last_checkpoint).

The unwritable work dir is a path below a regular file: the tests may run as root, for whom a
read-only directory is still writable.
"""
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cls_helpers import make_shapes_imagenet
from det_helpers import make_voc_tree
from scale_helpers import REPO, checkpoint_files, cls_config, run_tool
from seg_helpers import make_ade_tree

from backbones import BagResNet

DET = osp.join(REPO, 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')
SEG = osp.join(REPO, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad_input')
    make_shapes_imagenet(str(root / 'cls'), num_classes=3, per_class={'train': 2}, size=36)
    make_voc_tree(str(root / 'det'), {'trainval': 3, 'test': 2}, size=96)
    make_ade_tree(str(root / 'seg'), n_train=3, n_val=1, size=(72, 64))
    return root


def _copy(data, tmp_path, name):
    shutil.copytree(data / name, tmp_path / name)
    return tmp_path / name


def _cls(tmp_path, root, *extra):
    cfg = cls_config(str(tmp_path / 'cls.py'), str(root), num_classes=3, batch=6, epochs=1)
    return 'pretrain', [cfg, *extra]


def _det(root, *args, options=()):
    opts = [f'{k}.dataset.data_root={root}/VOCdevkit/' for k in ('train_dataloader', 'val_dataloader')]
    return 'train_det', [DET, *args, '--cfg-options', *opts, 'train_dataloader.batch_size=3', *options]


def _seg(root, options=()):
    opts = [f'{k}.dataset.data_root={root}/ADEChallengeData2016' for k in ('train_dataloader', 'val_dataloader')]
    opts += ['train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
             'train_dataloader.batch_size=3']
    return 'train_seg', [SEG, '--cfg-options', *opts, *options]


def cls_missing_root(data, tmp_path):
    return _cls(tmp_path, tmp_path / 'nowhere'), r'ImageNetFolder: no image folder .*nowhere/train'


def cls_empty_class_folder(data, tmp_path):
    root = _copy(data, tmp_path, 'cls')
    os.makedirs(root / 'train' / 'n00000003_ring')
    return _cls(tmp_path, root), r'class folder .*n00000003_ring holds no images'


def cls_truncated_jpeg(data, tmp_path):
    root = _copy(data, tmp_path, 'cls')
    for folder, _, files in os.walk(root / 'train'):
        for f in files:  # every image, so the first batch holds one whatever the shuffle
            path = osp.join(folder, f)
            blob = open(path, 'rb').read()
            open(path, 'wb').write(blob[:len(blob) // 2])
    return _cls(tmp_path, root), r'\.JPEG: image does not decode \(image file is truncated'


def cls_wrong_num_classes(data, tmp_path):
    return (_cls(tmp_path, data / 'cls', '--cfg-options', 'model.num_classes=5'),
            r'model\.num_classes = 5 but the training data has 3 classes')


def cls_unwritable_work_dir(data, tmp_path):
    (tmp_path / 'a_file').write_text('not a directory')
    return (_cls(tmp_path, data / 'cls', '--work-dir', str(tmp_path / 'a_file' / 'work')),
            r'.*a_file/work: a folder on this path is a file \(.*a_file\)')


def det_xml_missing_field(data, tmp_path):
    root = _copy(data, tmp_path, 'det')
    xml = root / 'VOCdevkit' / 'VOC2007' / 'Annotations' / '000001.xml'
    text = xml.read_text()
    start, end = text.index('<xmin>'), text.index('</xmin>') + len('</xmin>')
    xml.write_text(text[:start] + text[end:])
    return _det(root), r'000001\.xml: AttributeError: .*<object> 1 has no <bndbox><xmin>'


def det_checkpoint_of_another_architecture(data, tmp_path):
    path = tmp_path / 'resnet50d.pth'
    torch.save(BagResNet(depth=50, variant='D').state_dict(), path)
    return (_det(data / 'det', '--pretrained', str(path)),
            r'resnet50d\.pth does not fit BagResNet\(depth=18, .*shape mismatches')


def seg_label_png_wrong_size(data, tmp_path):
    root = _copy(data, tmp_path, 'seg')
    ann = root / 'ADEChallengeData2016' / 'annotations' / 'training'
    for f in os.listdir(ann):
        label = Image.open(ann / f)
        label.resize((label.width // 2, label.height // 2), Image.NEAREST).save(ann / f)
    return _seg(root), r'label map is 36x32 \(WxH\) but its image .* is 72x64'


def det_negative_batch(data, tmp_path):
    return (_det(data / 'det', options=['train_dataloader.batch_size=-2']),
            r'train_dataloader\.batch_size = -2: expected an integer >= 1')


def seg_unknown_key(data, tmp_path):
    return (_seg(data / 'seg', options=['train_dataloader.datset.data_root=/x']),
            r"unknown key 'datset' in train_dataloader; closest: train_dataloader\.dataset")


def seg_missing_root(data, tmp_path):
    return _seg(tmp_path / 'nowhere'), r'ADE20K image folder missing: .*nowhere/ADEChallengeData2016/images/training'


CASES = [cls_missing_root, cls_empty_class_folder, cls_truncated_jpeg, cls_wrong_num_classes, cls_unwritable_work_dir,
         det_xml_missing_field, det_checkpoint_of_another_architecture, det_negative_batch,
         seg_label_png_wrong_size, seg_unknown_key, seg_missing_root]


@pytest.mark.parametrize('case', CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_is_one_clear_error(case, data, tmp_path):
    import re
    (tool, args), expected = case(data, tmp_path)
    if '--work-dir' not in args:
        args = [args[0], '--work-dir', str(tmp_path / 'work'), *args[1:]]
    work_dir = args[args.index('--work-dir') + 1]
    proc = run_tool(tool, *args, check=False, timeout=240)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-4000:]
    assert len(errors) == 1, proc.stderr[-4000:]
    assert re.search(expected, errors[0]), errors[0]
    assert checkpoint_files(work_dir) == []


def test_a_good_input_passes_the_same_checks(data, tmp_path):
    """The control: the same tiny cls setup trains and checkpoints (so the cases above fail for their cause)."""
    (tool, args), work = _cls(tmp_path, data / 'cls'), str(tmp_path / 'work')
    proc = run_tool(tool, args[0], '--work-dir', work, *args[1:])
    assert 'preflight: 6 images of the first batch decode' in proc.stdout
    assert checkpoint_files(work) == ['epoch_1.pth', 'last_checkpoint']
