"""A generated Pascal VOC tree for the detection tests: real JPEG files and VOC XML annotations.

Three VOC classes are drawn as solid shapes of a fixed colour on uniform noise, at boxes that are
written to the XML (1-based VOC pixel coordinates, some as floats the way annotation tools write
them). ``python tests/det_helpers.py DIR`` writes the same tree for a manual run.
"""
from __future__ import annotations

import os
import os.path as osp
import sys

import torch
from torchvision.io import encode_jpeg

# the three real Pascal VOC 2011 photos of Debian's labelme-examples, with labelme2voc's XML
LABELME_VOC = '/usr/share/doc/labelme-examples/examples/bbox_detection/data_dataset_voc'

# class -> (colour, shape)
SHAPES = {
    'aeroplane': ((230, 40, 40), 'rect'),
    'bus': ((40, 200, 40), 'disc'),
    'person': ((40, 60, 230), 'triangle'),
}


def _mask(shape: str, h: int, w: int) -> torch.Tensor:
    ys = torch.arange(h, dtype=torch.float32).view(-1, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).view(1, -1) + 0.5
    if shape == 'rect':
        return torch.ones(h, w, dtype=torch.bool)
    if shape == 'disc':
        return ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2 <= 1.0
    # isosceles triangle, apex at the top centre, base on the bottom row
    half = (ys / h) * (w / 2)
    m = (xs - w / 2).abs() <= half
    m[-1, :] = True
    m[:, w // 2] = True
    return m


def _xml(img_id: str, width: int, height: int, objects: list[tuple[str, tuple[float, ...]]]) -> str:
    objs = ''.join(
        f'  <object>\n    <name>{name}</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n'
        f'    <difficult>0</difficult>\n    <bndbox>\n      <xmin>{x1}</xmin>\n      <ymin>{y1}</ymin>\n'
        f'      <xmax>{x2}</xmax>\n      <ymax>{y2}</ymax>\n    </bndbox>\n  </object>\n'
        for name, (x1, y1, x2, y2) in objects)
    return (f'<annotation>\n  <folder>VOC2007</folder>\n  <filename>{img_id}.jpg</filename>\n'
            f'  <size>\n    <width>{width}</width>\n    <height>{height}</height>\n    <depth>3</depth>\n'
            f'  </size>\n  <segmented>0</segmented>\n{objs}</annotation>\n')


def draw_image(gen: torch.Generator, size: int, max_objects: int = 3):
    """One noisy image with 1..max_objects non-overlapping shapes; returns (CHW uint8, objects)."""
    img = torch.randint(60, 190, (3, size, size), generator=gen, dtype=torch.uint8)
    taken = torch.zeros(size, size, dtype=torch.bool)
    objects = []
    n = int(torch.randint(1, max_objects + 1, (1,), generator=gen))
    names = list(SHAPES)
    for _ in range(20 * n):
        if len(objects) == n:
            break
        name = names[int(torch.randint(len(names), (1,), generator=gen))]
        w, h = (int(v) for v in torch.randint(size // 5, size // 2, (2,), generator=gen))
        x0 = int(torch.randint(0, size - w, (1,), generator=gen))
        y0 = int(torch.randint(0, size - h, (1,), generator=gen))
        if taken[max(0, y0 - 2):y0 + h + 2, max(0, x0 - 2):x0 + w + 2].any():
            continue
        taken[y0:y0 + h, x0:x0 + w] = True
        colour, shape = SHAPES[name]
        m = _mask(shape, h, w)
        for c in range(3):
            img[c, y0:y0 + h, x0:x0 + w][m] = colour[c]
        # VOC boxes are 1-based and inclusive; every other box is written with a float part
        box = (x0 + 1, y0 + 1, x0 + w, y0 + h)
        if len(objects) % 2:
            box = tuple(v + 0.37 for v in box)
        objects.append((name, box))
    return img, objects


def make_voc_tree(root: str, splits: dict[str, int], size: int = 128, year: str = 'VOC2007',
                  seed: int = 0) -> dict[str, list[tuple[str, list]]]:
    """Write ``root/VOCdevkit/<year>/{JPEGImages,Annotations,ImageSets/Main/<split>.txt}``.

    ``splits`` maps a split name to its number of images. Returns, per split, the image ids with
    the objects drawn in each (class name, VOC box).
    """
    sub = osp.join(root, 'VOCdevkit', year)
    for d in ('JPEGImages', 'Annotations', osp.join('ImageSets', 'Main')):
        os.makedirs(osp.join(sub, d), exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    drawn = {}
    counter = 0
    for split, count in splits.items():
        ids = []
        for _ in range(count):
            img_id = f'{counter:06d}'
            counter += 1
            img, objects = draw_image(gen, size)
            with open(osp.join(sub, 'JPEGImages', f'{img_id}.jpg'), 'wb') as f:
                f.write(encode_jpeg(img, quality=92).numpy().tobytes())
            with open(osp.join(sub, 'Annotations', f'{img_id}.xml'), 'w') as f:
                f.write(_xml(img_id, size, size, objects))
            ids.append((img_id, objects))
        with open(osp.join(sub, 'ImageSets', 'Main', f'{split}.txt'), 'w') as f:
            f.write(''.join(f'{i}\n' for i, _ in ids))
        drawn[split] = ids
    return drawn


def labelme_voc_tree(dst: str) -> str:
    """``dst/VOCdevkit/VOC2011`` over the three real photos of Debian's labelme-examples."""
    if not osp.isdir(LABELME_VOC):
        import pytest
        pytest.skip(f'{LABELME_VOC} is absent: install the Debian package labelme-examples '
                    '(make data-packages) for the real-data detection tests')
    sub = osp.join(dst, 'VOCdevkit', 'VOC2011')
    os.makedirs(osp.join(sub, 'ImageSets', 'Main'))
    for d in ('JPEGImages', 'Annotations'):
        os.symlink(osp.join(LABELME_VOC, d), osp.join(sub, d))
    ids = sorted(f[:-4] for f in os.listdir(osp.join(LABELME_VOC, 'Annotations')) if f.endswith('.xml'))
    with open(osp.join(sub, 'ImageSets', 'Main', 'trainval.txt'), 'w') as f:
        f.write(''.join(i + '\n' for i in ids))
    return osp.join(dst, 'VOCdevkit')


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: python tests/det_helpers.py OUT_DIR   (writes OUT_DIR/VOCdevkit/VOC2007)')
    make_voc_tree(sys.argv[1], {'trainval': 64, 'test': 16})
    print(f'wrote {osp.join(sys.argv[1], "VOCdevkit", "VOC2007")}')
