"""ImageNet-style folders of real photos at ImageNet's size, for benchmarks and paper-size smoke runs.

The photos are those of Debian's ``labelme-examples`` (VOC2011 street scenes, video frames of a
kitchen, an APC2016 shelf): real JPEG content, so decoding and augmentation cost what they cost on
ImageNet. Each written image is a random crop (30-100 % of the area) of one source photo, rescaled
so its longer side is 400-500 px (ImageNet's typical size), randomly flipped, saved as JPEG quality
90; class k draws from the k-th source photo (mod the number of sources).
"""
from __future__ import annotations

import glob
import os
import os.path as osp

import numpy as np

LABELME = '/usr/share/doc/labelme-examples/examples'


def photo_sources(root: str = LABELME) -> list[str]:
    """The distinct real photos of labelme-examples (annotated data only: no screenshots, no overlays)."""
    import hashlib
    seen, paths = set(), []
    for path in sorted(glob.glob(osp.join(root, '*', 'data_annotated', '*.jpg')) +
                       glob.glob(osp.join(root, 'tutorial', '*.jpg'))):
        with open(path, 'rb') as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest not in seen:  # the VOC2011 photos ship in three example folders
            seen.add(digest)
            paths.append(path)
    if not paths:
        raise FileNotFoundError(f'no labelme-examples photos under {root} (apt-get install labelme-examples)')
    return paths


def make_photo_imagenet(root: str, num_classes: int = 4, per_class: dict[str, int] | None = None,
                        long_side: tuple[int, int] = (400, 500), seed: int = 0) -> str:
    """Write ``root/{train,val}/cls{k}/*.JPEG``; returns ``root``. ``per_class``: images per split."""
    from PIL import Image
    per_class = per_class or {'train': 8, 'val': 2}
    sources = photo_sources()
    rng = np.random.default_rng(seed)
    photos = [Image.open(p).convert('RGB') for p in sources[:max(num_classes, 1)]]
    for split, n in per_class.items():
        for k in range(num_classes):
            folder = osp.join(root, split, f'cls{k}')
            os.makedirs(folder, exist_ok=True)
            photo = photos[k % len(photos)]
            w, h = photo.size
            for i in range(n):
                area = rng.uniform(0.3, 1.0) * w * h
                aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
                cw = int(min(w, round(np.sqrt(area * aspect))))
                ch = int(min(h, round(np.sqrt(area / aspect))))
                x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                img = photo.crop((x0, y0, x0 + cw, y0 + ch))
                side = int(rng.integers(long_side[0], long_side[1] + 1))
                scale = side / max(cw, ch)
                img = img.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BICUBIC)
                if rng.random() < 0.5:
                    img = img.transpose(Image.FLIP_LEFT_RIGHT)
                img.save(osp.join(folder, f'{split}_{k}_{i:05d}.JPEG'), quality=90)
    return root
