"""The Fashion-MNIST derived sets: boxes and label maps describe exactly the pixels they claim."""
import os.path as osp
import subprocess
import sys
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from experiments import fashion

pytestmark = pytest.mark.skipif(not osp.isdir(fashion.DEBIAN_DIR),
                                reason='Debian package dataset-fashion-mnist not installed (make data-packages)')


def test_real_fashion_mnist_is_read():
    images, labels = fashion.load_split('test')
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10  # the test split is balanced
    assert 60 < images.mean() < 90  # real photos on black, not zeros or noise


@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp('fashion') / 'data'
    cmd = [sys.executable, 'tools/prepare_fashion.py', '--out', str(out), '--limit', '200',
           '--scenes-train', '12', '--scenes-val', '6']
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True)
    assert 'already prepared' in second.stdout
    return out


def test_classification_folders(prepared):
    root = prepared / 'imagenet'
    for split in ('train', 'val'):
        files = sorted((root / split).glob('*/*.png'))
        assert len(files) == 200 and {f.parent.name for f in files} <= set(fashion.NAMES)
    img = np.asarray(Image.open(root / 'val' / fashion.NAMES[9] / 'val_00000.png'))
    first, _ = fashion.load_split('test')
    assert np.array_equal(img, first[0])  # val image 0 is test item 0 (an ankle boot), lossless


def test_boxes_and_masks_agree_with_pixels(prepared):
    voc = prepared / 'VOCdevkit' / 'VOC2007'
    ade = prepared / 'ADEChallengeData2016'
    n_objects = 0
    for split, ade_split, n in (('trainval', 'training', 12), ('test', 'validation', 6)):
        names = (voc / 'ImageSets' / 'Main' / f'{split}.txt').read_text().split()
        assert len(names) == n
        for name in names:
            labels = np.asarray(Image.open(ade / 'annotations' / ade_split / f'{name}.png'))
            image = np.asarray(Image.open(voc / 'JPEGImages' / f'{name}.jpg').convert('L')).astype(int)
            assert labels.shape == image.shape == (128, 128)
            covered = np.zeros_like(labels, dtype=bool)
            for obj in ET.parse(voc / 'Annotations' / f'{name}.xml').findall('object'):
                cls = fashion.NAMES.index(obj.find('name').text)
                x1, y1, x2, y2 = (int(obj.find('bndbox').find(t).text) - 1 for t in ('xmin', 'ymin', 'xmax', 'ymax'))
                inside = labels[y1:y2 + 1, x1:x2 + 1] == cls + 2
                ys, xs = np.nonzero(inside)
                # the box is the tight extent of the item's labelled pixels
                assert (ys.min(), ys.max(), xs.min(), xs.max()) == (0, y2 - y1, 0, x2 - x1)
                # labelled item pixels are bright (the item), the rest of the canvas is dark noise
                assert image[y1:y2 + 1, x1:x2 + 1][inside].mean() > fashion.FOREGROUND + 20
                covered[y1:y2 + 1, x1:x2 + 1] = True
                n_objects += 1
            assert np.all(labels[~covered] == 1)  # background everywhere outside the boxes
            assert set(np.unique(labels)) <= set(range(1, 12))
            assert image[labels == 1].mean() < 40
    assert n_objects >= 18 * 1.5  # 1-3 items per scene
