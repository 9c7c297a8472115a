"""ADE20K with its directory layout checked up front (mmseg's own dataset fails late and vaguely)."""
from __future__ import annotations

import os.path as osp

from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from user_errors import UserInputError

ADE_LAYOUT = ('ADEChallengeData2016/{images,annotations}/{training,validation}/ with ADE_*.jpg images and '
              'a same-named .png label map (values 0..150, 0 = other) for each image')


class SegLayoutError(UserInputError):
    """A segmentation data tree or file that does not have the expected layout or content."""


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """mmseg's ADE20KDataset, plus: the image and annotation folders exist, are not empty, every image
    is a regular file with its label map, and every label map is single-channel (L, P or 16-bit within
    0..255; RGB or LA is an error naming the file). Per-file content (size, label values) is checked by
    ``CheckSegMap``."""

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
        special = [d['img_path'] for d in data_list if not osp.isfile(d['img_path'])]
        if special:  # a directory or FIFO named like an image would fail late or block the loader
            raise SegLayoutError(f'{special[0]} is not a regular file ({len(special)} such image(s) in {img_dir})')
        for d in data_list:
            check_label_map_mode(d['seg_map_path'])
        return data_list


# PIL modes a label map may have: one value per pixel. mmseg reads them 'unchanged' and casts to uint8,
# so a palette (P) PNG gives its indices, L its grey values; 16-bit maps must stay within 0..255.
LABEL_MODES = ('L', 'P', '1', 'I;16', 'I;16B', 'I;16L', 'I')


def check_label_map_mode(path: str) -> None:
    """Reads the header only (and the pixels of a 16-bit map): cheap enough for every file at indexing."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode not in LABEL_MODES:
                raise SegLayoutError(f'{path}: label map has mode {mode} ({len(img.getbands())} channels); expected a '
                                     'single-channel PNG (mode L or P) holding class indices')
            if mode.startswith('I'):
                lo, hi = img.getextrema()
                if lo < 0 or hi > 255:
                    raise SegLayoutError(f'{path}: 16-bit label map holds values {lo}..{hi}; label maps are read '
                                         'as 8 bit (0..255), so values above 255 would wrap: save it as 8-bit L or P')
    except SegLayoutError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise SegLayoutError(f'{path}: label map does not decode ({type(e).__name__}: {e})') from e


@DATASETS.register_module()
class ADEFormatDataset(CheckedADE20KDataset):
    """The ADEChallengeData2016 layout and label convention (0 = unlabelled, 1..K = the classes) for a
    data set with its own K classes, given as ``metainfo=dict(classes=...)``: label values index those
    classes directly (ADE20KDataset would instead look them up among ADE20K's 150 names)."""
    METAINFO = dict(classes=(), palette=())

    @classmethod
    def get_label_map(cls, new_classes=None):
        return None
