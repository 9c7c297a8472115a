"""Helpers for the classification tests: a generated ImageNet-layout dataset of real JPEG files and the
--cfg-options that shrink a paper config to it."""
from __future__ import annotations

import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHAPES = ('disc', 'square', 'triangle', 'ring', 'cross', 'bar', 'star', 'hexagon', 'arc', 'dots')


def _polygon(cx, cy, r, n, rot, inner=None):
    pts = []
    for i in range(n * (2 if inner else 1)):
        rr = (inner if inner and i % 2 else r)
        a = rot + math.pi * 2 * i / (n * (2 if inner else 1))
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def draw_shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """One image of ``kind`` at a random position, scale and rotation, random colours, on a noisy background."""
    bg = rng.integers(0, 256, 3)
    fg = (bg + rng.integers(80, 176, 3)) % 256  # colour carries no class information
    img = Image.new('RGB', (size, size), tuple(int(v) for v in bg))
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.22, 0.36)
    cx, cy = rng.uniform(r, size - r, 2)
    rot = rng.uniform(0, 2 * math.pi)
    fill = tuple(int(v) for v in fg)
    w = max(2, int(r / 3))
    if kind == 'disc':
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == 'square':
        d.polygon(_polygon(cx, cy, r, 4, rot), fill=fill)
    elif kind == 'triangle':
        d.polygon(_polygon(cx, cy, r, 3, rot), fill=fill)
    elif kind == 'ring':
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=w)
    elif kind == 'cross':
        for a in (rot, rot + math.pi / 2):
            d.line([(cx - r * math.cos(a), cy - r * math.sin(a)), (cx + r * math.cos(a), cy + r * math.sin(a))],
                   fill=fill, width=w)
    elif kind == 'bar':
        d.line([(cx - r * math.cos(rot), cy - r * math.sin(rot)), (cx + r * math.cos(rot), cy + r * math.sin(rot))],
               fill=fill, width=w)
    elif kind == 'star':
        d.polygon(_polygon(cx, cy, r, 5, rot, inner=r * 0.4), fill=fill)
    elif kind == 'hexagon':
        d.polygon(_polygon(cx, cy, r, 6, rot), outline=fill, width=w)
    elif kind == 'arc':
        deg = math.degrees(rot)
        d.arc([cx - r, cy - r, cx + r, cy + r], deg, deg + 180, fill=fill, width=w)
    elif kind == 'dots':
        for a in (rot, rot + 2 * math.pi / 3, rot + 4 * math.pi / 3):
            x, y = cx + r * 0.7 * math.cos(a), cy + r * 0.7 * math.sin(a)
            d.ellipse([x - r / 4, y - r / 4, x + r / 4, y + r / 4], fill=fill)
    else:
        raise ValueError(kind)
    arr = np.asarray(img).astype(np.int16) + rng.integers(-25, 26, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


GRATINGS = tuple(f'{f}_{a}deg' for f in ('fine', 'coarse') for a in (0, 36, 72, 108, 144))


def draw_grating(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """Class = orientation (5) x spatial period (2) of a sinusoidal grating; phase, colours, contrast and
    noise are random, so neither colour nor any single pixel tells the class."""
    period = (4.5, 10.0)[label // 5] * rng.uniform(0.9, 1.1)
    theta = math.radians(36 * (label % 5) + rng.uniform(-6, 6))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    wave = np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + rng.uniform(0, 2 * math.pi))
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    img = (a + (b - a) * (0.5 + 0.5 * wave)[..., None] * rng.uniform(0.5, 1.0)) + rng.normal(0, 20, (size, size, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_gratings_imagenet(root: str, per_class: dict | None = None, size: int = 40, seed: int = 0) -> str:
    """``root/{train,val}/<class>/*.JPEG``: 10 grating classes (real JPEG files)."""
    per_class = per_class or {'train': 40, 'val': 10}
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(GRATINGS):
            folder = osp.join(root, split, f'n{c:08d}_{name}')
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                draw_grating(c, size, rng).save(osp.join(folder, f'{split}_{c}_{i:04d}.JPEG'), quality=90)
    return root


def make_shapes_imagenet(root: str, num_classes: int = 10, per_class: dict | None = None, size: int = 40,
                         seed: int = 0) -> str:
    """``root/{train,val}/<class>/*.JPEG`` of ``num_classes`` shapes (real JPEG files)."""
    per_class = per_class or {'train': 40, 'val': 10}
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c in range(num_classes):
            folder = osp.join(root, split, f'n{c:08d}_{SHAPES[c]}')
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                draw_shape(SHAPES[c], size, rng).save(osp.join(folder, f'{split}_{c}_{i:04d}.JPEG'), quality=90)
    return root


def tiny_data_options(root: str, size: int = 32, batch: int = 4, workers: int = 0) -> list[str]:
    """--cfg-options pointing a paper config at a generated dataset with ``size``-pixel crops."""
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={root}', f'{loader}.batch_size={batch}',
                 f'{loader}.num_workers={workers}', f'{loader}.persistent_workers={workers > 0}',
                 f'{loader}.pin_memory=False']
    opts += [f'train_dataloader.dataset.pipeline.0.size={size}',
             f'val_dataloader.dataset.pipeline.0.size={size + size // 8}',
             f'val_dataloader.dataset.pipeline.1.size={size}',
             f'test_dataloader.dataset.pipeline.0.size={size + size // 8}',
             f'test_dataloader.dataset.pipeline.1.size={size}']
    return opts


def run_tool(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` in a fresh interpreter, as a user would; fail loudly with its output."""
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', script), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{script} {" ".join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n'
                             f'{proc.stderr[-6000:]}')
    return proc


def tensorboard_scalars(work_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar the runs in ``work_dir`` wrote through mmengine's TensorboardVisBackend, read back with
    TensorBoard's own EventAccumulator: ``{tag: [(step, value), ...]}`` in run order."""
    import glob

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'events.out.tfevents.*')))
    if not files:
        raise AssertionError(f'no TensorBoard event files under {work_dir}/*/vis_data/')
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        acc = EventAccumulator(path, size_guidance={'scalars': 0})  # 0: keep every event
        acc.Reload()
        for tag in acc.Tags()['scalars']:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return scalars
