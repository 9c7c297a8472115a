"""nvjpeg: a batch of JPEG files decoded, crop-resized and flipped on the GPU (tools/benchmark_data.py
--device cuda, the GPU check), drawing crop boxes as :class:`classification.transforms.RandomResizedCrop`
does on the CPU."""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from .transforms import RandomResizedCrop


def decode_crop_batch_cuda(encoded: Sequence[torch.Tensor], crop: RandomResizedCrop, flip_p: float = 0.5,
                           device: str | torch.device = 'cuda') -> torch.Tensor:
    """nvjpeg: decode a batch of JPEG files (uint8 byte tensors from ``read_file``) on the GPU with
    ``torchvision.io.decode_jpeg(list, device=...)``, then each image's random-resized crop (boxes drawn
    by ``crop.make_params`` as on the CPU) and horizontal flip there; returns the stacked uint8 batch.
    """
    if not torch.cuda.is_available():
        raise RuntimeError('decode_crop_batch_cuda needs CUDA (torch.cuda.is_available() is False)')
    images = decode_jpeg(list(encoded), mode=ImageReadMode.RGB, device=device)
    out = []
    for img in images:
        p = crop.make_params([img])
        x = F.resized_crop(img, p['top'], p['left'], p['height'], p['width'], crop.size,
                           interpolation=crop.interpolation, antialias=crop.antialias)
        out.append(x.flip(-1) if torch.rand(1).item() < flip_p else x)
    return torch.stack(out)
