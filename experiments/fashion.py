"""Fashion-MNIST as real data for the whole pipeline, written in the real formats.

* classification: an ImageNet-style folder (``train/<class>/*.png``, ``val/<class>/*.png``) read by the
  same dataset code as ImageNet;
* detection: a VOCdevkit (JPEG + VOC XML) of scenes composed from Fashion-MNIST *test* items;
* segmentation: an ADEChallengeData2016 tree (JPEG + PNG label maps) of the same scenes.

Scene items are placed without overlap, so every box is the exact extent of its item's foreground
pixels and every labelled pixel belongs to exactly one box. Everything is seeded: the same arguments
always write the same files.
"""
from __future__ import annotations

import gzip
import os
import os.path as osp
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import numpy as np
from mmengine.config import Config
from PIL import Image

CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag',
           'Ankle boot')
# file-system and VOC-XML friendly names, in label order: the configs' list (one source for data and configs)
NAMES = tuple(Config.fromfile(osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', '_base_',
                                       'fashion.py')).fashion_classes)
# ADE label maps: 0 = unlabelled (ignored after reduce_zero_label), 1 = background, 2.. = items
SEG_CLASSES = ('background',) + NAMES
DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
FOREGROUND = 48  # grey level above which a resized item pixel counts as the item


def _read_idx(path: str, header: int) -> np.ndarray:
    with gzip.open(path, 'rb') as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)


def load_split(split: str, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) of 'train' (60,000) or 'test' (10,000)."""
    prefix = {'train': 'train', 'test': 't10k'}[split]
    source = source or find_source()
    images = _read_idx(osp.join(source, f'{prefix}-images-idx3-ubyte.gz'), 16).reshape(-1, 28, 28)
    labels = _read_idx(osp.join(source, f'{prefix}-labels-idx1-ubyte.gz'), 8).astype(np.int64)
    if len(images) != len(labels):
        raise ValueError(f'{source}: {len(images)} images but {len(labels)} labels in the {split} split')
    return images, labels


def find_source(download_root: str = 'data/fashion-mnist-download') -> str:
    """Debian's dataset-fashion-mnist if installed, else torchvision's download, else a clear error."""
    if osp.isfile(osp.join(DEBIAN_DIR, 't10k-labels-idx1-ubyte.gz')):
        return DEBIAN_DIR
    try:
        from torchvision.datasets import FashionMNIST
        FashionMNIST(download_root, train=True, download=True)
        FashionMNIST(download_root, train=False, download=True)
        return osp.join(download_root, 'FashionMNIST', 'raw')
    except Exception as e:  # noqa: BLE001 -- any failure means: no source
        raise FileNotFoundError(
            f'Fashion-MNIST not found: no {DEBIAN_DIR} (apt-get install dataset-fashion-mnist) and '
            f'torchvision could not download it ({type(e).__name__}: {e})') from e


def write_classification(root: str, source: str | None = None, limit: int | None = None,
                         train_limit: int | None = None) -> dict:
    """ImageNet-style folders ``root/{train,val}/<class>/*.png``; val is Fashion-MNIST's test split.

    ``limit`` keeps the first N images of both splits, ``train_limit`` of the train split only.
    """
    counts = {}
    for split, folder in (('train', 'train'), ('test', 'val')):
        images, labels = load_split(split, source)
        n = min(x for x in (limit, train_limit if split == 'train' else None, len(labels)) if x)
        images, labels = images[:n], labels[:n]
        for name in NAMES:
            os.makedirs(osp.join(root, folder, name), exist_ok=True)
        for i, (img, lab) in enumerate(zip(images, labels)):
            Image.fromarray(img, mode='L').save(osp.join(root, folder, NAMES[lab], f'{folder}_{i:05d}.png'))
        counts[folder] = len(labels)
    return counts


@dataclass
class Scene:
    image: np.ndarray                      # (H, W) uint8
    boxes: list = field(default_factory=list)   # [x1, y1, x2, y2] inclusive pixel extents
    labels: list = field(default_factory=list)  # Fashion-MNIST class ids
    mask: np.ndarray | None = None         # (H, W) uint8: 0 background, 1 + class id on item pixels


def compose_scene(items: np.ndarray, item_labels: np.ndarray, rng: np.random.Generator, size: int = 128,
                  max_items: int = 3, scale: tuple = (1.0, 2.0)) -> Scene:
    """Place 1..max_items items at random scales and non-overlapping positions on a noisy canvas."""
    canvas = rng.normal(20, 8, (size, size)).clip(0, 255).astype(np.float32)
    mask = np.zeros((size, size), np.uint8)
    scene = Scene(image=canvas)
    for _ in range(rng.integers(1, max_items + 1)):
        k = rng.integers(len(items))
        side = int(round(28 * rng.uniform(*scale)))
        item = np.asarray(Image.fromarray(items[k]).resize((side, side), Image.BILINEAR))
        fg = item > FOREGROUND
        if fg.sum() < 20:
            continue
        ys, xs = np.nonzero(fg)
        item, fg = item[ys.min():ys.max() + 1, xs.min():xs.max() + 1], fg[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        h, w = fg.shape
        for _attempt in range(20):
            y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
            if not any(x <= b[2] + 2 and b[0] <= x + w + 1 and y <= b[3] + 2 and b[1] <= y + h + 1
                       for b in scene.boxes):
                break
        else:
            continue
        region = canvas[y:y + h, x:x + w]
        region[fg] = item[fg]
        mask[y:y + h, x:x + w][fg] = 1 + item_labels[k]
        scene.boxes.append([int(x), int(y), int(x + w - 1), int(y + h - 1)])
        scene.labels.append(int(item_labels[k]))
    scene.image, scene.mask = canvas.clip(0, 255).astype(np.uint8), mask
    return scene


def _voc_xml(name: str, scene: Scene) -> bytes:
    h, w = scene.image.shape
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = 'VOC2007'
    ET.SubElement(ann, 'filename').text = f'{name}.jpg'
    sz = ET.SubElement(ann, 'size')
    for tag, v in (('width', w), ('height', h), ('depth', 3)):
        ET.SubElement(sz, tag).text = str(v)
    for box, lab in zip(scene.boxes, scene.labels):
        obj = ET.SubElement(ann, 'object')
        ET.SubElement(obj, 'name').text = NAMES[lab]
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        bb = ET.SubElement(obj, 'bndbox')
        # VOC boxes are 1-based inclusive pixel indices
        for tag, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bb, tag).text = str(v + 1)
    return ET.tostring(ann)


def write_scenes(root: str, n_train: int = 1000, n_val: int = 200, size: int = 128, seed: int = 0,
                 source: str | None = None, max_items: int = 3) -> dict:
    """Write the same composed scenes as ``root/VOCdevkit/VOC2007`` and ``root/ADEChallengeData2016``.

    Train scenes use the first half of Fashion-MNIST's test split, val scenes the second half, so no
    item appears in both; none of them was seen by pretraining (which uses the train split).
    """
    images, labels = load_split('test', source)
    half = len(images) // 2
    rng = np.random.default_rng(seed)
    voc = osp.join(root, 'VOCdevkit', 'VOC2007')
    ade = osp.join(root, 'ADEChallengeData2016')
    for d in (osp.join(voc, 'JPEGImages'), osp.join(voc, 'Annotations'), osp.join(voc, 'ImageSets', 'Main')):
        os.makedirs(d, exist_ok=True)
    splits = {}
    for split, n, (lo, hi), ade_split in (('trainval', n_train, (0, half), 'training'),
                                          ('test', n_val, (half, len(images)), 'validation')):
        os.makedirs(osp.join(ade, 'images', ade_split), exist_ok=True)
        os.makedirs(osp.join(ade, 'annotations', ade_split), exist_ok=True)
        names = []
        for i in range(n):
            scene = compose_scene(images[lo:hi], labels[lo:hi], rng, size=size, max_items=max_items)
            name = f'{split}_{i:05d}'
            rgb = Image.fromarray(scene.image, mode='L').convert('RGB')
            rgb.save(osp.join(voc, 'JPEGImages', f'{name}.jpg'), quality=95)
            with open(osp.join(voc, 'Annotations', f'{name}.xml'), 'wb') as f:
                f.write(_voc_xml(name, scene))
            rgb.save(osp.join(ade, 'images', ade_split, f'{name}.jpg'), quality=95)
            Image.fromarray(scene.mask + 1, mode='L').save(osp.join(ade, 'annotations', ade_split, f'{name}.png'))
            names.append(name)
        with open(osp.join(voc, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(names) + '\n')
        splits[split] = n
    return splits
