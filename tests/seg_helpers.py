"""Small segmentation data trees for the tests: a generated ADEChallengeData2016 tree (real JPEG
images, PNG label maps with ADE20K's file values) and a VOC tree from Debian's labelme-examples."""
from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

# ADE20K file values (1-based; 0 = "other", ignored) and their colours in the generated images.
WALL, SKY, FLOOR, TREE = 1, 3, 4, 5
COLOURS = {WALL: (165, 160, 150), SKY: (110, 165, 235), FLOOR: (130, 85, 45), TREE: (35, 125, 40)}
CLASSES = tuple(COLOURS)
# mmseg's ADE20KDataset class names for those values (index = value - 1 after reduce_zero_label)
CLASS_NAMES = {WALL: 'wall', SKY: 'sky', FLOOR: 'floor', TREE: 'tree'}

VOC_SRC = '/usr/share/doc/labelme-examples/examples/semantic_segmentation/data_dataset_voc'
VOC_IDS = ('2011_000003', '2011_000006', '2011_000025')


def ade_scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """One image and its label map: sky band on top, floor band at the bottom, wall between,
    a tree disk somewhere on the wall, and a small patch of "other" (0, ignored)."""
    label = np.full((height, width), WALL, np.uint8)
    sky = int(height * rng.uniform(0.15, 0.35))
    floor = int(height * rng.uniform(0.6, 0.8))
    label[:sky] = SKY
    label[floor:] = FLOOR
    yy, xx = np.mgrid[:height, :width]
    r = rng.uniform(0.12, 0.2) * height
    cy, cx = rng.uniform(sky + r, floor), rng.uniform(r, width - r)
    label[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = TREE
    py, px = rng.integers(0, height - 8), rng.integers(0, width - 8)
    label[py:py + 8, px:px + 8] = 0
    img = np.zeros((height, width, 3), np.float32)
    for value, colour in COLOURS.items():
        img[label == value] = colour
    img[label == 0] = rng.uniform(0, 255, 3)
    img += rng.uniform(-20, 20)  # brightness per image
    img += rng.normal(0, 12, img.shape)  # texture
    return np.clip(img, 0, 255).astype(np.uint8), label


def write_pair(img_dir: str, ann_dir: str, name: str, img: np.ndarray, label: np.ndarray) -> tuple[str, str]:
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    img_path, ann_path = os.path.join(img_dir, f'{name}.jpg'), os.path.join(ann_dir, f'{name}.png')
    Image.fromarray(img).save(img_path, quality=92)
    Image.fromarray(label, mode='L').save(ann_path)
    return img_path, ann_path


def make_ade_tree(root: str, n_train: int = 32, n_val: int = 8, size: tuple[int, int] = (96, 80),
                  seed: int = 0) -> str:
    """Write ``root/ADEChallengeData2016`` with ``size`` = (width, height) images; return its path."""
    rng = np.random.default_rng(seed)
    data_root = os.path.join(root, 'ADEChallengeData2016')
    for split, n in (('training', n_train), ('validation', n_val)):
        for i in range(n):
            img, label = ade_scene(rng, *size)
            write_pair(os.path.join(data_root, 'images', split), os.path.join(data_root, 'annotations', split),
                       f'ADE_{split[:5] if split == "training" else "val"}_{i + 1:08d}', img, label)
    return data_root


def make_voc_tree(root: str) -> str | None:
    """A VOC2012-style tree (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/{train,val}.txt)
    holding labelme-examples' three VOC2011 photos and palette masks; None if the package is absent."""
    if not os.path.isdir(os.path.join(VOC_SRC, 'SegmentationClassPNG')):
        return None
    data_root = os.path.join(root, 'VOC2012')
    for sub, src, ext in (('JPEGImages', 'JPEGImages', 'jpg'), ('SegmentationClass', 'SegmentationClassPNG', 'png')):
        os.makedirs(os.path.join(data_root, sub))
        for i in VOC_IDS:
            shutil.copy(os.path.join(VOC_SRC, src, f'{i}.{ext}'), os.path.join(data_root, sub))
    split_dir = os.path.join(data_root, 'ImageSets', 'Segmentation')
    os.makedirs(split_dir)
    for split in ('train', 'val'):
        with open(os.path.join(split_dir, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(VOC_IDS) + '\n')
    return data_root


def write_voc_config(path: str, data_root: str, size: int = 160, max_iters: int = 150) -> str:
    """A config that trains the tiny FCN-D8 on the VOC tree through mmseg's PascalVOCDataset (21 classes,
    no reduce_zero_label), resizing whole images to fit ``size`` x ``size`` (no crop: over-fitting)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    text = f"""
_base_ = {os.path.join(repo, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')!r}
model = dict(data_preprocessor=dict(size=({size}, {size})),
             decode_head=dict(num_classes=21), auxiliary_head=dict(num_classes=21))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegMap', num_classes=21),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegMap', num_classes=21),
    dict(type='PackSegInputs'),
]
voc = dict(_delete_=True, type='PascalVOCDataset', data_root={data_root!r},
           data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'))
train_dataloader = dict(batch_size=3, num_workers=0, persistent_workers=False,
                        dataset=dict(voc, ann_file='ImageSets/Segmentation/train.txt', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(voc, ann_file='ImageSets/Segmentation/val.txt', pipeline=test_pipeline))
test_dataloader = val_dataloader
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={max_iters}, by_epoch=False)]
train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
default_hooks = dict(checkpoint=dict(interval={max_iters}))
"""
    with open(path, 'w') as f:
        f.write(text)
    return path
