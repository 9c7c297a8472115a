"""ImageNet-style classification data: ``<root>/<split>/<class>/*.JPEG`` or ``<root>/<split>/`` plus a
``path label`` annotation file (the official val layout).

Each item is ``dict(inputs=CHW tensor, data_samples=int label)``; batches are stacked with mmengine's
``default_collate``. Class indices follow the sorted class folders of ``<root>/train`` (or ``classes``),
so train and val agree.
"""
from __future__ import annotations

import os
import os.path as osp
import stat
from typing import Sequence

import torch
from mmengine.logging import print_log
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2.functional import to_dtype

from user_errors import UserInputError

from .registry import DATASETS
from .transforms import UnreadableImageError, build_pipeline

IMG_EXTENSIONS = ('.jpeg', '.jpg', '.png')
_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n')


class ImageFolderError(UserInputError):
    """An image folder tree or annotation file that does not have the expected layout."""


def _has_image_header(path: str) -> bool:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False  # a FIFO or device: reading it would block or never end
        with open(path, 'rb') as f:
            head = f.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in _MAGIC)


@DATASETS.register_module()
class ImageNetFolder(torch.utils.data.Dataset):
    """Args:
        data_root: dataset root holding ``train/`` and ``val/``.
        split: sub-folder of ``data_root`` with the images of this split.
        ann_file: optional ``path label`` file (relative to ``data_root``); paths are relative to the split
            folder, labels are class indices. Without it, class sub-folders give the labels.
        classes: class names (a list, or a text file with one per line); default: the sorted
            sub-folders of ``<data_root>/train`` (else of the split folder).
        pipeline: transforms as config dicts (see :func:`classification.transforms.build_pipeline`).
        channels: 3 decodes RGB, 1 grayscale.
        on_unreadable: 'error' (default) raises naming the file; 'skip' leaves it out and logs a count.
            Files are checked for a JPEG/PNG header when the dataset is built; a file that still fails
            to decode later raises (or, with 'skip', is replaced by the next image, with a warning).
    """

    def __init__(self, data_root: str, split: str = 'train', ann_file: str | None = None,
                 classes: Sequence[str] | str | None = None, pipeline: Sequence[dict] | None = None,
                 channels: int = 3, on_unreadable: str = 'error'):
        if on_unreadable not in ('error', 'skip'):
            raise ValueError(f"on_unreadable must be 'error' or 'skip', got {on_unreadable!r}")
        if channels not in (1, 3):
            raise ValueError(f'channels must be 1 (grayscale) or 3 (RGB), got {channels}')
        self.data_root, self.split = data_root, split
        self.img_dir = osp.join(data_root, split)
        if not osp.isdir(self.img_dir):
            raise FileNotFoundError(f'ImageNetFolder: no image folder {self.img_dir} '
                                    f'(expected {data_root}/{split}/<class>/*.JPEG)')
        self.classes = self._find_classes(classes)
        self.mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
        self.on_unreadable = on_unreadable
        self.pipeline = build_pipeline(pipeline)
        # a first step that decodes JPEGs itself (RandomResizedCrop, at a reduced DCT scale) is handed the file
        self._open_jpeg = getattr(self.pipeline.transforms[0], 'open_jpeg', None) if self.pipeline.transforms else None
        samples = self._read_ann(ann_file) if ann_file else self._scan_folders()
        if not samples:
            raise FileNotFoundError(f'ImageNetFolder: no images ({", ".join(IMG_EXTENSIONS)}) under {self.img_dir}')
        bad = [p for p, _ in samples if not _has_image_header(p)]
        if bad and on_unreadable == 'error':
            raise UnreadableImageError(f'{bad[0]}: not a readable JPEG/PNG image ({len(bad)} such file(s) in '
                                       f"{self.img_dir}); fix or remove them, or set on_unreadable='skip'")
        if bad:
            bad_set = set(bad)
            samples = [s for s in samples if s[0] not in bad_set]
            print_log(f'ImageNetFolder({self.img_dir}): skipped {len(bad)} unreadable image(s), '
                      f'first: {bad[0]}', logger='current', level=30)
        self.samples = samples
        self.skipped = len(bad)
        self.metainfo = dict(classes=tuple(self.classes))

    def _find_classes(self, classes) -> list[str]:
        if isinstance(classes, str):
            path = classes if osp.isabs(classes) else osp.join(self.data_root, classes)
            with open(path) as f:
                classes = [line.strip() for line in f if line.strip()]
        if classes is None:
            base = osp.join(self.data_root, 'train')
            base = base if osp.isdir(base) else self.img_dir
            classes = sorted(d.name for d in os.scandir(base) if d.is_dir())
            if not classes:
                raise FileNotFoundError(f'ImageNetFolder: no class folders in {base} '
                                        f'(expected {base}/<class>/*.JPEG, or pass classes=)')
        return list(classes)

    def _scan_folders(self) -> list[tuple[str, int]]:
        index = {c: i for i, c in enumerate(self.classes)}
        samples = []
        for entry in sorted(os.scandir(self.img_dir), key=lambda e: e.name):
            if not entry.is_dir():
                continue
            if entry.name not in index:
                raise ImageFolderError(f'ImageNetFolder: class folder {entry.path} is not one of the '
                                 f'{len(self.classes)} known classes (from {self.data_root}/train)')
            found = [(osp.join(root, f), index[entry.name]) for root, _, files in sorted(os.walk(entry.path))
                     for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
            if not found:
                raise ImageFolderError(f'ImageNetFolder: class folder {entry.path} holds no images '
                                       f'({", ".join(IMG_EXTENSIONS)}); add its images or remove the folder')
            samples += found
        return samples

    def _read_ann(self, ann_file: str) -> list[tuple[str, int]]:
        path = ann_file if osp.isabs(ann_file) else osp.join(self.data_root, ann_file)
        samples = []
        with open(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                    raise ImageFolderError(f'{path}:{n}: expected "relative/path.JPEG label", got {line.strip()!r}')
                label = int(parts[1])
                if not 0 <= label < len(self.classes):
                    raise ImageFolderError(f'{path}:{n}: label {label} outside 0..{len(self.classes) - 1} '
                                     f'({len(self.classes)} classes)')
                img = osp.join(self.img_dir, parts[0].strip())
                if not osp.isfile(img):
                    raise FileNotFoundError(f'{path}:{n}: no image {img}')
                samples.append((img, label))
        return samples

    def __len__(self) -> int:
        return len(self.samples)

    def get_data_info(self, idx: int) -> dict:
        path, label = self.samples[idx]
        return dict(img_path=path, gt_label=label)

    def load(self, idx: int) -> torch.Tensor:
        path = self.samples[idx][0]
        try:
            img = decode_image(read_file(path), mode=self.mode)
        except (RuntimeError, ValueError, OSError) as e:
            raise UnreadableImageError(f'{path}: cannot decode image ({str(e).splitlines()[0] if str(e) else e!r})') from e
        # a 16-bit PNG decodes to uint16; the pipeline works on 0..255 (as PIL and OpenCV give it)
        return img if img.dtype == torch.uint8 else to_dtype(img, torch.uint8, scale=True)

    def __getitem__(self, idx: int) -> dict:
        for attempt in range(len(self.samples)):
            i = (idx + attempt) % len(self.samples)
            try:
                jpeg = self._open_jpeg(self.samples[i][0], self.mode) if self._open_jpeg else None
                inputs = self.pipeline(self.load(i) if jpeg is None else jpeg)
            except UnreadableImageError as e:
                if self.on_unreadable == 'error':
                    raise
                print_log(f'skipping unreadable image: {e}', logger='current', level=30)
                continue
            return dict(inputs=inputs, data_samples=self.samples[i][1])
        raise UnreadableImageError(f'ImageNetFolder({self.img_dir}): no image could be decoded')
