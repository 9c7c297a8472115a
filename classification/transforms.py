"""Image transforms: torchvision transforms v2 built from config dicts, plus the paper's PCA lighting.

A pipeline in a config is a list of dicts, e.g. ``dict(type='RandomResizedCrop', size=224)``; ``type``
names a torchvision ``transforms.v2`` class (registered below) or :class:`PCALighting`, the one
transform torchvision does not have.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms import v2

from .registry import TRANSFORMS

_TORCHVISION = ('RandomResizedCrop', 'RandomHorizontalFlip', 'ColorJitter', 'Resize', 'CenterCrop', 'RandomCrop',
                'Normalize', 'ToDtype', 'Grayscale', 'Pad')
for _name in _TORCHVISION:
    TRANSFORMS.register_module(name=_name, module=getattr(v2, _name))

# AlexNet's eigen-decomposition of the ImageNet RGB covariance, pixel values in [0, 1]
# (Krizhevsky et al. 2012); columns of the matrix are the eigenvectors.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))


@TRANSFORMS.register_module()
class PCALighting:
    """AlexNet-style lighting noise: add ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~ N(0, alphastd).

    Args:
        alphastd: standard deviation of the coefficients (the paper: 0.1). 0 is the identity.
        value_range: the pixel range of the float input (255 for ``ToDtype(..., scale=False)`` output,
            1 for ``scale=True``); the eigenvalues are given for [0, 1] and scaled to it.
    """

    def __init__(self, alphastd: float = 0.1, value_range: float = 255.0,
                 eigval: Sequence[float] = IMAGENET_EIGVAL, eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC):
        if alphastd < 0:
            raise ValueError(f'PCALighting: alphastd must be >= 0, got {alphastd}')
        self.alphastd = alphastd
        self.eigval = torch.tensor(eigval, dtype=torch.float32) * value_range
        self.eigvec = torch.tensor(eigvec, dtype=torch.float32)
        if self.eigvec.shape != (len(self.eigval), len(self.eigval)):
            raise ValueError(f'PCALighting: eigvec must be {len(self.eigval)}x{len(self.eigval)}, '
                             f'got {tuple(self.eigvec.shape)}')

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(img):
            raise TypeError(f'PCALighting expects a float image, got {img.dtype}; put '
                            f"dict(type='ToDtype', dtype='float32') before it")
        if img.shape[-3] != len(self.eigval):
            raise ValueError(f'PCALighting expects {len(self.eigval)} channels, got image of shape {tuple(img.shape)}')
        if self.alphastd == 0:
            return img
        alpha = torch.randn(len(self.eigval)) * self.alphastd
        rgb = self.eigvec @ (alpha * self.eigval)
        return img + rgb.to(img.dtype).view(-1, 1, 1)

    def __repr__(self):
        return f'PCALighting(alphastd={self.alphastd})'


def build_pipeline(steps: Sequence[dict] | None) -> v2.Compose:
    """Build a ``v2.Compose`` from config dicts (``dtype`` may be given as a string, e.g. 'float32')."""
    transforms = []
    for step in steps or ():
        if not isinstance(step, dict) or 'type' not in step:
            raise ValueError(f"pipeline steps must be dicts with a 'type', got {step!r}")
        step = dict(step)
        if isinstance(step.get('dtype'), str):
            dtype = getattr(torch, step['dtype'], None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"pipeline step {step['type']}: unknown dtype {step['dtype']!r}")
            step['dtype'] = dtype
        transforms.append(TRANSFORMS.build(step))
    return v2.Compose(transforms)
