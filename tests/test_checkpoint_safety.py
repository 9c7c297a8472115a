"""Nothing in a checkpoint is executed: a crafted file whose unpickling would create a marker file is
refused by every tool that reads checkpoints (``--resume`` included), in each pickle container torch
reads (zip, legacy, raw pickle), and the marker never appears. The config text a checkpoint carries is
read as data only: code in it does not run, and an export still works from its literal backbone."""
from __future__ import annotations

import os
import pickle
import re

import pytest
import torch

from test_bad_input_more import DET, SEG, _save_model, run_in_process, snapshot
from cls_helpers import make_shapes_imagenet
from det_helpers import make_voc_tree
from scale_helpers import cls_config
from seg_helpers import make_ade_tree

from safe_read import load_training_state, load_weights_file
from user_errors import CheckpointError


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


class _ViaGetattr:
    """getattr(os, 'system')('touch ...'): the getattr the allow-list resolves only for HistoryBuffer."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (getattr(os, 'system'), (f'touch {self.marker}',))


def _crafted(root, marker) -> dict:
    evil = {'state_dict': {'w': torch.zeros(1)}, 'meta': {'epoch': 1}, 'x': _Payload(marker)}
    files = {}
    torch.save(evil, root / 'zip.pth')
    files['zip'] = root / 'zip.pth'
    torch.save(evil, root / 'legacy.pth', _use_new_zipfile_serialization=False)
    files['legacy'] = root / 'legacy.pth'
    for protocol in (2, 4):
        with open(root / f'raw{protocol}.pth', 'wb') as f:
            pickle.dump(evil, f, protocol=protocol)
        files[f'raw{protocol}'] = root / f'raw{protocol}.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': _ViaGetattr(marker)}, root / 'getattr.pth')
    files['getattr'] = root / 'getattr.pth'
    return {k: str(v) for k, v in files.items()}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('safety')
    marker = root / 'MARKER'
    make_shapes_imagenet(str(root / 'cls'), num_classes=3, per_class={'train': 2}, size=36)
    make_voc_tree(str(root / 'det'), {'trainval': 2, 'test': 1}, size=96)
    make_ade_tree(str(root / 'seg'), n_train=2, n_val=1, size=(72, 64))
    cls = cls_config(str(root / 'cls.py'), str(root / 'cls'), num_classes=3, batch=6, epochs=1,
                     extra='randomness = dict(seed=0, deterministic=False)\n')
    return dict(root=root, marker=marker, cls=cls, files=_crafted(root, marker))


def _det(s, t, *args):
    roots = [f'{k}.dataset.data_root={s["root"]}/det/VOCdevkit/' for k in ('train_dataloader', 'val_dataloader',
                                                                            'test_dataloader')]
    return [DET, *args, '--work-dir', t / 'w', '--cfg-options', *roots, 'train_dataloader.batch_size=2']


def _seg(s, t, *args):
    roots = [f'{k}.dataset.data_root={s["root"]}/seg/ADEChallengeData2016' for k in ('train_dataloader',
                                                                                      'val_dataloader', 'test_dataloader')]
    return [SEG, *args, '--work-dir', t / 'w', '--cfg-options', *roots, 'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']


READERS = {
    'pretrain --resume': lambda s, t, f: ('pretrain', [s['cls'], '--work-dir', t / 'w', '--resume', f]),
    'pretrain load_from': lambda s, t, f: ('pretrain', [s['cls'], '--work-dir', t / 'w', '--cfg-options',
                                                        f'load_from={f}']),
    'pretrain distillation teacher': lambda s, t, f: (
        'pretrain', [s['cls'], '--work-dir', t / 'w', '--cfg-options', f'model.distill.teacher_config={s["cls"]}',
                     f'model.distill.teacher_checkpoint={f}']),
    'test_cls': lambda s, t, f: ('test_cls', [s['cls'], f, '--work-dir', t / 'w']),
    'export_backbone': lambda s, t, f: ('export_backbone', [f, t / 'bb.pth']),
    'convert_weights': lambda s, t, f: ('convert_weights', [f, t / 'bb.pth', '--depth', '18', '--variant', 'D']),
    'test_det': lambda s, t, f: ('test_det', _det(s, t, f)),
    'train_det --resume': lambda s, t, f: ('train_det', _det(s, t, '--resume', f)),
    'train_det --pretrained': lambda s, t, f: ('train_det', _det(s, t, '--pretrained', f)),
    'test_seg': lambda s, t, f: ('test_seg', _seg(s, t, f)),
    'train_seg --resume': lambda s, t, f: ('train_seg', _seg(s, t, '--resume', f)),
    'train_seg --pretrained': lambda s, t, f: ('train_seg', _seg(s, t, '--pretrained', f)),
}


@pytest.mark.parametrize('reader', list(READERS))
def test_every_tool_refuses_a_crafted_checkpoint(reader, setup, tmp_path):
    formats = ['zip'] if reader not in ('pretrain --resume', 'test_cls') else list(setup['files'])
    for fmt in formats:
        tool, argv = READERS[reader](setup, tmp_path, setup['files'][fmt])
        code, err = run_in_process(tool, *argv)
        errors = [line for line in err.splitlines() if line.startswith('error:')]
        assert code == 1 and len(errors) == 1, (fmt, err[-3000:])
        assert re.search(r'refusing to unpickle|not a readable torch', errors[0]), (fmt, errors[0])
        assert setup['files'][fmt].split('/')[-1] in errors[0]
        assert not setup['marker'].exists(), (reader, fmt)
        assert not (tmp_path / 'bb.pth').exists()


def test_the_loaders_refuse_every_format(setup):
    for fmt, path in setup['files'].items():
        for load in (load_weights_file, load_training_state):
            with pytest.raises(CheckpointError, match='refusing to unpickle|not a readable torch'):
                load(path)
    assert not setup['marker'].exists()
    # the global torch would have to create, named
    with pytest.raises(CheckpointError, match="refusing to unpickle 'posix.system'"):
        load_training_state(setup['files']['zip'])


def test_config_text_in_a_checkpoint_is_read_as_data(setup, tmp_path):
    """export_backbone without --config reads the backbone arguments from meta['cfg'] with ast: the
    os.system line around them never runs, and the export is made from the literal arguments."""
    path = _save_model(tmp_path / 'cls.pth', setup['cls'])
    ckpt = torch.load(path, weights_only=True)
    ckpt['meta']['cfg'] = (f"import os\nos.system('touch {setup['marker']}')\n"
                           "model = dict(type='BagClassifier', num_classes=3, backbone=dict(type='BagResNet', "
                           "depth=18, variant='D', stem_channels=8, base_channels=8, out_indices=(3, ), "
                           "norm_eval=True))\n")
    torch.save(ckpt, path)
    before = snapshot(tmp_path)
    code, err = run_in_process('export_backbone', path, tmp_path / 'bb.pth')
    assert code == 0, err[-2000:]
    assert not setup['marker'].exists()
    exported = torch.load(tmp_path / 'bb.pth', weights_only=True)
    assert len(exported) == len([k for k in ckpt['state_dict'] if k.startswith('backbone.')])
    assert torch.equal(exported['conv1.0.weight'], ckpt['state_dict']['backbone.conv1.0.weight'])
    # the export and the writing layer's record of it
    assert set(snapshot(tmp_path)) - set(before) == {str(tmp_path / 'bb.pth'), str(tmp_path / '.bagtricks-written')}

