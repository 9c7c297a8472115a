"""Real-format data at the paper's image sizes for the paper-scale smoke tests, made from real photos.

The photos are those of Debian's ``labelme-examples``: for detection and segmentation its three Pascal
VOC 2011 images with their VOC XML boxes and VOC palette masks; for classification Fashion-MNIST items
(Debian's ``dataset-fashion-mnist``) composited onto crops of all its photos. Everything is seeded.

* :func:`make_imagenet_photos`: ``root/{train,val}/<class>/*.JPEG`` at ImageNet-like sizes (500 x 375 etc.);
* :func:`make_voc0712`: ``VOCdevkit/{VOC2007 (trainval + test), VOC2012 (trainval)}`` at VOC's own size;
* :func:`make_ade_photos`: ``ADEChallengeData2016/{images,annotations}/{training,validation}`` at 683 x 512.

``python tests/paper_data.py OUT_DIR`` writes all three for a manual run.
"""
from __future__ import annotations

import os
import os.path as osp
import sys
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

LABELME = '/usr/share/doc/labelme-examples/examples'
VOC_DET = osp.join(LABELME, 'bbox_detection', 'data_dataset_voc')
VOC_SEG = osp.join(LABELME, 'semantic_segmentation', 'data_dataset_voc')
PHOTO_IDS = ('2011_000003', '2011_000006', '2011_000025')
# VOC segmentation values of the classes in the three photos -> their ADE20K class names
VOC_TO_ADE = {15: 'person', 6: 'bus', 7: 'car'}


def require_real_data(fashion: bool = False) -> None:
    """Skip the calling test when the Debian data packages are absent."""
    import pytest
    if not osp.isdir(VOC_DET) or not osp.isdir(osp.join(VOC_SEG, 'SegmentationClassPNG')):
        pytest.skip(f'{LABELME} is absent: install the Debian package labelme-examples (make data-packages)')
    if fashion:
        from experiments.fashion import DEBIAN_DIR
        if not osp.isfile(osp.join(DEBIAN_DIR, 't10k-images-idx3-ubyte.gz')):
            pytest.skip(f'{DEBIAN_DIR} is absent: install the Debian package dataset-fashion-mnist '
                        '(make data-packages)')


def _photo(photo_id: str) -> np.ndarray:
    return np.asarray(Image.open(osp.join(VOC_DET, 'JPEGImages', f'{photo_id}.jpg')).convert('RGB'))


def _random_view(photo: np.ndarray, width: int, height: int, rng: np.random.Generator,
                 mask: np.ndarray | None = None):
    """A random crop (scale jitter, any position), maybe mirrored, resized to ``width`` x ``height``.
    ``mask`` (a label map of the photo) gets the same crop and flip, resized with nearest neighbour."""
    h, w = photo.shape[:2]
    # crop of the photo's pixels with the output's aspect ratio, 55-100 % of the largest such crop
    full = min(w / width, h / height)
    frac = rng.uniform(0.55, 1.0)
    cw, ch = max(8, int(round(width * full * frac))), max(8, int(round(height * full * frac)))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    flip = bool(rng.integers(2))
    box = (x0, y0, x0 + cw, y0 + ch)
    img = Image.fromarray(photo).resize((width, height), Image.BILINEAR, box=box)
    img = img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img
    if mask is None:
        return np.asarray(img)
    lab = Image.fromarray(mask).resize((width, height), Image.NEAREST, box=box)
    lab = lab.transpose(Image.FLIP_LEFT_RIGHT) if flip else lab
    return np.asarray(img), np.asarray(lab)


def _image_size(size: int, rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) with the longer side ``size`` and the shorter 2/3..4/5 of it, mostly landscape,
    as ImageNet's photos are."""
    short = int(round(size * rng.uniform(2 / 3, 0.8)))
    return (size, short) if rng.uniform() < 0.7 else (short, size)


def composite_item(background: np.ndarray, item: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paste a 28 x 28 Fashion-MNIST item, upscaled to 35-65 % of the shorter side and tinted, onto
    ``background``; the item's grey level is its alpha (its black surround leaves the photo visible)."""
    h, w = background.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 0.65))
    alpha = np.asarray(Image.fromarray(item).resize((side, side), Image.BICUBIC), np.float32) / 255.0
    alpha = np.clip(alpha * 1.3, 0.0, 1.0)[..., None]
    tint = rng.uniform(0.35, 1.0, 3) * 255.0
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    out = background.astype(np.float32)
    patch = out[y0:y0 + side, x0:x0 + side]
    out[y0:y0 + side, x0:x0 + side] = patch * (1 - alpha) + tint * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def make_imagenet_photos(root: str, size: int = 500, num_classes: int = 10, per_class: dict | None = None,
                         seed: int = 0) -> str:
    """``root/{train,val}/<class>/*.JPEG``: class ``c`` = a Fashion-MNIST item of class ``c`` (the test
    split: train and val use disjoint items) composited onto a random crop of one of labelme-examples'
    real photos (``experiments.photos.photo_sources``), each image with its longer side ``size`` px (ImageNet's typical 500; 299 or 224 px networks
    get real down-scaling from their own pipelines). ``per_class`` maps a split to images per class
    (default 2 train, 1 val). Returns ``root``."""
    from experiments.fashion import NAMES, load_split
    from experiments.photos import photo_sources
    if not 2 <= num_classes <= len(NAMES):
        raise ValueError(f'num_classes must be 2..{len(NAMES)} (Fashion-MNIST classes), got {num_classes}')
    per_class = per_class or {'train': 2, 'val': 1}
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.open(p).convert('RGB')) for p in photo_sources()]
    items, labels = load_split('test')
    # items of each class in file order; train takes them from the front, val from the back
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    for split, n in per_class.items():
        for c in range(num_classes):
            folder = osp.join(root, split, f'n{c:08d}_{NAMES[c]}')
            os.makedirs(folder, exist_ok=True)
            picks = by_class[c][:n] if split == 'train' else by_class[c][::-1][:n]
            for i, idx in enumerate(picks):
                width, height = _image_size(size, rng)
                photo = photos[int(rng.integers(len(photos)))]
                img = composite_item(_random_view(photo, width, height, rng), items[idx], rng)
                Image.fromarray(img).save(osp.join(folder, f'{split}_{c}_{i:04d}.JPEG'), quality=90)
    return root


def read_voc_objects(xml_path: str) -> list[tuple[str, tuple[float, float, float, float]]]:
    """(class name, (xmin, ymin, xmax, ymax)) of every object of a VOC XML file, coordinates as written."""
    objects = []
    for obj in ET.parse(xml_path).getroot().iter('object'):
        bb = obj.find('bndbox')
        objects.append((obj.findtext('name').strip(),
                        tuple(float(bb.findtext(k)) for k in ('xmin', 'ymin', 'xmax', 'ymax'))))
    return objects


def _voc_xml(folder: str, filename: str, width: int, height: int, objects) -> bytes:
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'folder').text = folder
    ET.SubElement(ann, 'filename').text = filename
    sz = ET.SubElement(ann, 'size')
    for k, v in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(sz, k).text = str(v)
    ET.SubElement(ann, 'segmented').text = '0'
    for name, box in objects:
        obj = ET.SubElement(ann, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        bb = ET.SubElement(obj, 'bndbox')
        for k, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), box):
            ET.SubElement(bb, k).text = repr(v)  # float coordinates, as annotation tools write them
    return ET.tostring(ann)


def flip_voc_box(box, width: int):
    """A VOC box (1-based, inclusive pixel coordinates) of an image mirrored left-right."""
    x1, y1, x2, y2 = box
    return (width + 1 - x2, y1, width + 1 - x1, y2)


# (year, split) -> the photos of the split, each as (photo id, mirrored?); every split sees other views
VOC0712_SPLITS = {
    ('VOC2007', 'trainval'): (('2011_000003', False), ('2011_000025', True)),
    ('VOC2012', 'trainval'): (('2011_000006', False), ('2011_000003', True)),
    ('VOC2007', 'test'): (('2011_000025', False),),
}


def make_voc0712(root: str, splits: dict = VOC0712_SPLITS) -> str:
    """``root/VOCdevkit`` with VOC2007 (trainval + test) and VOC2012 (trainval): the real VOC2011 photos at
    their own size (500 x 338 / 500 x 375), plain or mirrored, with their real boxes (mirrored with the
    image), JPEG + VOC XML, under VOC's own file names. Returns the VOCdevkit path (ends with '/')."""
    devkit = osp.join(root, 'VOCdevkit')
    counters = {'VOC2007': 0, 'VOC2012': 0}
    for (year, split), views in splits.items():
        sub = osp.join(devkit, year)
        for d in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
            os.makedirs(osp.join(sub, d), exist_ok=True)
        ids = []
        for photo_id, mirrored in views:
            counters[year] += 1
            img_id = f'{counters[year]:06d}' if year == 'VOC2007' else f'2012_{counters[year]:06d}'
            img = Image.open(osp.join(VOC_DET, 'JPEGImages', f'{photo_id}.jpg')).convert('RGB')
            objects = read_voc_objects(osp.join(VOC_DET, 'Annotations', f'{photo_id}.xml'))
            if mirrored:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
                objects = [(n, flip_voc_box(b, img.width)) for n, b in objects]
            img.save(osp.join(sub, 'JPEGImages', f'{img_id}.jpg'), quality=95)
            with open(osp.join(sub, 'Annotations', f'{img_id}.xml'), 'wb') as f:
                f.write(_voc_xml(year, f'{img_id}.jpg', img.width, img.height, objects))
            ids.append(img_id)
        with open(osp.join(sub, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{i}\n' for i in ids))
    return devkit + os.sep


def ade_values() -> dict[int, int]:
    """VOC segmentation value -> ADE20K file value (1-based index into mmseg's ADE20K class names)."""
    from mmseg.datasets import ADE20KDataset
    names = [c.strip() for c in ADE20KDataset.METAINFO['classes']]
    return {voc: names.index(ade) + 1 for voc, ade in VOC_TO_ADE.items()}


def make_ade_photos(root: str, n_train: int = 2, n_val: int = 1, size: tuple[int, int] = (683, 512),
                    seed: int = 0) -> str:
    """``root/ADEChallengeData2016`` of random crops/mirrors of the real VOC2011 photos rescaled to ``size``
    (width, height; 683 x 512 is a typical ADE20K size), with their real masks as ADE20K label maps:
    person, bus and car get their ADE20K values, VOC background and boundaries 0 ("other", ignored).
    Returns the ADEChallengeData2016 path."""
    rng = np.random.default_rng(seed)
    to_ade = np.zeros(256, np.uint8)
    for voc, ade in ade_values().items():
        to_ade[voc] = ade
    pairs = [(_photo(i), np.asarray(Image.open(osp.join(VOC_SEG, 'SegmentationClassPNG', f'{i}.png'))))
             for i in PHOTO_IDS]
    data_root = osp.join(root, 'ADEChallengeData2016')
    for split, prefix, n in (('training', 'ADE_train', n_train), ('validation', 'ADE_val', n_val)):
        img_dir, ann_dir = osp.join(data_root, 'images', split), osp.join(data_root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(n):
            # training walks the photos from the first, validation from the last (the bus-and-car one)
            photo, mask = pairs[i % len(pairs)] if split == 'training' else pairs[-1 - i % len(pairs)]
            img, lab = _random_view(photo, *size, rng, mask=mask)
            Image.fromarray(img).save(osp.join(img_dir, f'{prefix}_{i + 1:08d}.jpg'), quality=92)
            Image.fromarray(to_ade[lab], mode='L').save(osp.join(ann_dir, f'{prefix}_{i + 1:08d}.png'))
    return data_root


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python tests/paper_data.py OUT_DIR '
                 '(writes OUT_DIR/{imagenet,VOCdevkit,ADEChallengeData2016})')
    out = sys.argv[1]
    make_imagenet_photos(osp.join(out, 'imagenet'))
    make_voc0712(out)
    make_ade_photos(out)
    print(f'wrote {out}/imagenet, {out}/VOCdevkit, {out}/ADEChallengeData2016')
