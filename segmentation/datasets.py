"""ADE20K with its directory layout checked up front (mmseg's own dataset fails late and vaguely)."""
from __future__ import annotations

import os.path as osp

from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from engine.guard import UserInputError

ADE_LAYOUT = ('ADEChallengeData2016/{images,annotations}/{training,validation}/ with ADE_*.jpg images and '
              'a same-named .png label map (values 0..150, 0 = other) for each image')


class SegLayoutError(UserInputError):
    """A segmentation data tree or file that does not have the expected layout or content."""


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """mmseg's ADE20KDataset, plus: the image and annotation folders exist, are not empty, and every
    image has its label map. Per-file content (size, label values) is checked by ``CheckSegMap``."""

    def load_data_list(self) -> list[dict]:
        img_dir = self.data_prefix.get('img_path')
        ann_dir = self.data_prefix.get('seg_map_path')
        for what, folder in (('image', img_dir), ('annotation', ann_dir)):
            if not folder or not osp.isdir(folder):
                raise SegLayoutError(f'ADE20K {what} folder missing: {folder} (data_root={self.data_root}); '
                                     f'expected {ADE_LAYOUT}')
        data_list = super().load_data_list()
        if not data_list:
            raise SegLayoutError(f'no *{self.img_suffix} images in {img_dir}; expected {ADE_LAYOUT}')
        missing = [d['seg_map_path'] for d in data_list if not osp.isfile(d['seg_map_path'])]
        if missing:
            raise SegLayoutError(f'{len(missing)} of {len(data_list)} images in {img_dir} have no label map '
                                 f'(first: {", ".join(missing[:3])}); expected {ADE_LAYOUT}')
        return data_list


@DATASETS.register_module()
class ADEFormatDataset(CheckedADE20KDataset):
    """The ADEChallengeData2016 layout and label convention (0 = unlabelled, 1..K = the classes) for a
    data set with its own K classes, given as ``metainfo=dict(classes=...)``: label values index those
    classes directly (ADE20KDataset would instead look them up among ADE20K's 150 names)."""
    METAINFO = dict(classes=(), palette=())

    @classmethod
    def get_label_map(cls, new_classes=None):
        return None
