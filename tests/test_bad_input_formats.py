"""Unusual but valid inputs load correctly, and unusual invalid ones are one clear error:

* images: every PNG/JPEG mode and bit depth PIL writes (L, LA, P, P with transparency, 1-bit, RGBA,
  16-bit grey and 16-bit RGB PNG, CMYK, grayscale and progressive JPEG) decode to the same 8-bit RGB
  (or grey) pixels PIL's own conversion gives, also through the training pipeline's JPEG path;
* filesystem oddities in an image folder: a FIFO, a symlink loop, a dangling link are errors naming
  the file (the FIFO does not block), a permission-denied file likewise (when not root);
* VOC XML: whitespace around class names, no <size>, inverted boxes, a FIFO as an image;
* ADE label maps: P-mode and L-mode PNG give the same labels; 16-bit maps within 0..255 load; RGB or
  LA label maps, and 16-bit values above 255, are errors naming the file.
"""
from __future__ import annotations

import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from det_helpers import make_voc_tree
from scale_helpers import REPO
from seg_helpers import make_ade_tree

from classification.datasets import ImageNetFolder
from classification.transforms import UnreadableImageError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8)
PIPE = [dict(type='torchvision/ToDtype', dtype='float32', scale=False)]  # the dataset needs one step; load() is tested


def _write_modes(folder) -> dict:
    """name -> (path, reference RGB array as PIL / OpenCV decode it to 8 bits)."""
    os.makedirs(folder, exist_ok=True)
    img = Image.fromarray(RGB)
    out = {}
    for name, converted, kw in (('L.png', img.convert('L'), {}), ('LA.png', img.convert('LA'), {}),
                                ('P.png', img.convert('P'), {}), ('PA.png', img.convert('RGBA').convert('P'), {}),
                                ('1.png', img.convert('1'), {}), ('RGBA.png', img.convert('RGBA'), {}),
                                ('CMYK.jpg', img.convert('CMYK'), dict(quality=95)),
                                ('L.jpg', img.convert('L'), dict(quality=95)),
                                ('progressive.jpg', img, dict(quality=95, progressive=True))):
        path = osp.join(folder, name)
        converted.save(path, **kw)
        out[name] = (path, np.asarray(Image.open(path).convert('RGB')))
    grey16 = RGB[..., 0].astype(np.uint16) * 257
    path = osp.join(folder, 'I16.png')
    Image.fromarray(grey16).save(path)
    out['I16.png'] = (path, np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2))
    path = osp.join(folder, 'RGB16.png')
    cv2.imwrite(path, RGB[..., ::-1].astype(np.uint16) * 257)  # 16-bit RGB (PIL cannot write it)
    out['RGB16.png'] = (path, RGB)
    return out


def test_every_png_and_jpeg_mode_decodes_to_pils_pixels(tmp_path):
    files = _write_modes(tmp_path / 'train' / 'n0_modes')
    ds = ImageNetFolder(str(tmp_path), 'train', pipeline=PIPE)
    assert len(ds) == len(files) == 11
    for i, (path, _) in enumerate(ds.samples):
        img = ds.load(i)
        ref = files[osp.basename(path)][1]
        assert img.dtype.is_floating_point is False and str(img.dtype) == 'torch.uint8', path
        assert tuple(img.shape) == (3, 20, 24), path
        assert np.abs(img.permute(1, 2, 0).numpy().astype(int) - ref.astype(int)).max() == 0, path
    grey = ImageNetFolder(str(tmp_path), 'train', pipeline=PIPE, channels=1)
    i = [osp.basename(p) for p, _ in grey.samples].index('I16.png')
    assert grey.load(i).shape == (1, 20, 24) and int(grey.load(i).max()) == int(RGB[..., 0].max())


@pytest.mark.parametrize('kind', ['fifo', 'symlink_loop', 'dangling_link', 'unreadable'])
def test_filesystem_oddities_in_an_image_folder_are_one_error(kind, tmp_path):
    from PIL import Image as I
    folder = tmp_path / 'train' / 'n0_a'
    folder.mkdir(parents=True)
    I.fromarray(RGB).save(folder / 'good.png')
    bad = folder / 'bad.png'
    if kind == 'fifo':
        os.mkfifo(bad)
    elif kind == 'symlink_loop':
        os.symlink(bad, bad)
    elif kind == 'dangling_link':
        os.symlink(tmp_path / 'gone.png', bad)
    else:
        if os.geteuid() == 0:
            pytest.skip('root reads a file without read permission')
        I.fromarray(RGB).save(bad)
        os.chmod(bad, 0)
    with pytest.raises(UnreadableImageError, match=rf'{re.escape(str(bad))}: not a readable JPEG/PNG image'):
        ImageNetFolder(str(tmp_path), 'train', pipeline=PIPE)
    ds = ImageNetFolder(str(tmp_path), 'train', pipeline=PIPE, on_unreadable='skip')  # the user's choice
    assert [osp.basename(p) for p, _ in ds.samples] == ['good.png']


# -- VOC XML ------------------------------------------------------------------------------------------
TINY_DET = osp.join(REPO, 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')


def _voc(root):
    import detection  # noqa: F401
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(TINY_DET).val_dataloader.dataset
    cfg.update(data_root=osp.join(root, 'VOCdevkit'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(cfg)


@pytest.fixture
def voc(tmp_path):
    make_voc_tree(str(tmp_path), {'test': 2}, size=96, seed=1)
    return tmp_path, tmp_path / 'VOCdevkit' / 'VOC2007'


def test_voc_xml_oddities_load(voc):
    root, year = voc
    plain = _voc(root).get_data_info(0)
    xml = year / 'Annotations' / f'{plain["img_id"]}.xml'
    text = xml.read_text()
    name = re.search(r'<name>(\w+)</name>', text).group(1)
    text = text.replace(f'<name>{name}</name>', f'<name>\n  {name} </name>', 1)  # hand-edited XML
    text = re.sub(r'<size>.*?</size>', '', text, flags=re.S)  # no <size>: read from the image
    xml.write_text(text)
    odd = _voc(root).get_data_info(0)
    assert (odd['width'], odd['height']) == (plain['width'], plain['height']) == (96, 96)
    assert [o['bbox_label'] for o in odd['instances']] == [o['bbox_label'] for o in plain['instances']]
    assert [o['bbox'] for o in odd['instances']] == [o['bbox'] for o in plain['instances']]


def test_voc_inverted_box_and_special_image_are_one_error(voc):
    from detection import VOCLayoutError
    root, year = voc
    ids = (year / 'ImageSets' / 'Main' / 'test.txt').read_text().split()
    xml = year / 'Annotations' / f'{ids[0]}.xml'
    text = xml.read_text()
    xmin, xmax = re.search(r'<xmin>([\d.]+)</xmin>', text).group(1), re.search(r'<xmax>([\d.]+)</xmax>', text).group(1)
    xml.write_text(text.replace(f'<xmin>{xmin}</xmin>', f'<xmin>{xmax}</xmin>', 1)
                   .replace(f'<xmax>{xmax}</xmax>', f'<xmax>{xmin}</xmax>', 1))
    with pytest.raises(VOCLayoutError, match=rf'{ids[0]}\.xml: object 1 has xmax < xmin'):
        _voc(root)
    xml.write_text(text)
    image = year / 'JPEGImages' / f'{ids[1]}.jpg'
    os.remove(image)
    os.mkfifo(image)
    with pytest.raises(VOCLayoutError, match=rf'VOC image {re.escape(str(image))} is not a regular file'):
        _voc(root)


# -- ADE label maps --------------------------------------------------------------------------------
TINY_SEG = osp.join(REPO, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')


def _ade(root):
    import segmentation  # noqa: F401
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(TINY_SEG).val_dataloader.dataset
    cfg.data_root = str(root)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(cfg)


def test_ade_label_maps_in_p_l_and_16_bit_give_the_same_labels(tmp_path):
    from segmentation import SegLayoutError
    root = make_ade_tree(str(tmp_path), n_train=1, n_val=3, size=(40, 32), seed=2)
    folder = osp.join(root, 'annotations', 'validation')
    names = sorted(os.listdir(folder))
    with DefaultScope.overwrite_default_scope('mmseg'):
        before = [_ade(root)[i]['data_samples'].gt_sem_seg.data.clone() for i in range(3)]
    labels = [np.array(Image.open(osp.join(folder, n))) for n in names]
    palette = Image.fromarray(labels[0], mode='L').convert('P')  # P mode: the values are palette indices
    palette.putpalette([c for i in range(256) for c in ((i * 37) % 256, (i * 91) % 256, i)])
    palette.save(osp.join(folder, names[0]))
    Image.fromarray(labels[1].astype(np.uint16)).save(osp.join(folder, names[1]))  # 16-bit, values < 256
    assert Image.open(osp.join(folder, names[0])).mode == 'P'
    assert Image.open(osp.join(folder, names[1])).mode.startswith('I')
    with DefaultScope.overwrite_default_scope('mmseg'):
        ds = _ade(root)
        after = [ds[i]['data_samples'].gt_sem_seg.data for i in range(3)]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(before, after))

    rgb = osp.join(folder, names[2])
    Image.fromarray(labels[2]).convert('RGB').save(rgb)
    with pytest.raises(SegLayoutError, match=rf'{re.escape(rgb)}: label map has mode RGB \(3 channels\); expected'):
        _ade(root)
    wide = labels[2].astype(np.uint16)
    wide[0, 0] = 300
    Image.fromarray(wide).save(rgb)
    with pytest.raises(SegLayoutError, match=rf'{re.escape(rgb)}: 16-bit label map holds values 0\.\.300'):
        _ade(root)


def test_every_mode_passes_the_training_pipeline(tmp_path):
    """The same files through __getitem__ with RandomResizedCrop (whose JPEG path decodes at a reduced
    scale): 3 channels, 0..255, and the whole-image crop's mean is the PIL reference's (an inverted CMYK
    or a dropped channel would move it by far more)."""
    files = _write_modes(tmp_path / 'train' / 'n0_modes')
    pipe = [dict(type='torchvision/RandomResizedCrop', size=(20, 24), scale=(1.0, 1.0), ratio=(1.2, 1.2),
                 antialias=True),
            dict(type='torchvision/ToDtype', dtype='float32', scale=False)]
    ds = ImageNetFolder(str(tmp_path), 'train', pipeline=pipe)
    for i, (path, _) in enumerate(ds.samples):
        x = ds[i]['inputs']
        ref = files[osp.basename(path)][1].astype(np.float64)
        assert tuple(x.shape) == (3, 20, 24) and 0 <= float(x.min()) and float(x.max()) <= 255, path
        assert abs(float(x.double().mean()) - ref.mean()) < 2.0, path
