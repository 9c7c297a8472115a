"""A pipeline step after ``LoadAnnotations`` that rejects label maps that do not fit their image."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .datasets import SegLayoutError


@TRANSFORMS.register_module()
class CheckSegMap(BaseTransform):
    """Raise :class:`SegLayoutError` naming the file when a label map's size differs from its image's
    or it holds values that are neither a class nor the ignore value.

    Values are reported as they are in the file: with ``reduce_zero_label`` (ADE20K) the file's
    0..num_classes map to ignore, 0..num_classes-1, so the file may hold 0..num_classes and 255.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        if num_classes < 1:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results: dict) -> dict:
        if 'gt_seg_map' not in results:
            raise KeyError('CheckSegMap must follow LoadAnnotations in the pipeline')
        seg, path = results['gt_seg_map'], results.get('seg_map_path', '?')
        img_hw = tuple(results['ori_shape'][:2])  # before any Resize
        if seg.shape[:2] != img_hw:
            raise SegLayoutError(f'{path}: label map is {seg.shape[1]}x{seg.shape[0]} (WxH) but its image '
                                 f'{results.get("img_path", "?")} is {img_hw[1]}x{img_hw[0]}; they must match')
        values = np.unique(seg)
        bad = values[(values >= self.num_classes) & (values != self.ignore_index)]
        if bad.size:
            reduced = results.get('reduce_zero_label', False)
            lo, hi = (0, self.num_classes) if reduced else (0, self.num_classes - 1)
            raw = bad.astype(np.int64) + 1 if reduced else bad
            raise SegLayoutError(f'{path}: label values {raw[:10].tolist()} outside {lo}..{hi} and not the '
                                 f'ignore value {self.ignore_index}'
                                 + (' (file values; reduce_zero_label maps 0 to ignore)' if reduced else ''))
        return results

    def __repr__(self):
        return f'{type(self).__name__}(num_classes={self.num_classes}, ignore_index={self.ignore_index})'
