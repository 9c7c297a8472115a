"""The classifier's data preprocessor: the batch to the training device, then the batched photometric step.

Loader workers hand over uint8 crops (4x less to copy and pin than float32) with, per image, the
colour-jitter / lighting / normalisation parameters that :class:`classification.transforms.Photometric`
drew for it; here they are applied to the whole batch at once, on the device the model trains on
(mixup stays in the classifier's loss). Batches of float images (pipelines that normalise in the
workers, e.g. ``Photometric(where='workers')`` or per-transform pipelines) pass through unchanged.
"""
from __future__ import annotations

from typing import Mapping

import torch
from mmengine.model import BaseDataPreprocessor

from .registry import MODELS
from .transforms import NUM_PARAMS, apply_photometric


@MODELS.register_module()
class BagDataPreprocessor(BaseDataPreprocessor):
    """Args:
        non_blocking: copy host-to-device asynchronously (useful with ``pin_memory=True``).
    """

    def __init__(self, non_blocking: bool = True):
        super().__init__(non_blocking=non_blocking)

    def forward(self, data: dict, training: bool = False) -> dict:
        inputs = data['inputs']
        if isinstance(inputs, Mapping):
            if set(inputs) != {'image', 'params'}:
                raise TypeError(f"BagDataPreprocessor: inputs as a dict must hold 'image' and 'params' "
                                f'(from the Photometric step), got keys {sorted(inputs)}')
            images, params = inputs['image'], inputs['params']
            if images.ndim != 4 or params.shape != (images.shape[0], NUM_PARAMS):
                raise ValueError(f'BagDataPreprocessor: expected (N, C, H, W) images and (N, {NUM_PARAMS}) '
                                 f'parameters, got {tuple(images.shape)} and {tuple(params.shape)}')
            # uint8 over the bus, float on the device; the parameters stay on the host until needed
            x = apply_photometric(self.cast_data(images), params)
        elif isinstance(inputs, torch.Tensor):
            x = self.cast_data(inputs)
            x = x if x.is_floating_point() else x.float()
        else:
            raise TypeError(f'BagDataPreprocessor: inputs must be a batch tensor or the Photometric dict, '
                            f'got {type(inputs).__name__}')
        return dict(inputs=x, data_samples=self.cast_data(data.get('data_samples')))
