"""mmdet's VOCDataset with layout errors that name the file, and annotation-tool XML accepted."""
from __future__ import annotations

import os.path as osp
import xml.etree.ElementTree as ET

from mmengine.fileio import exists
from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS

from user_errors import UserInputError

BOX_FIELDS = ('xmin', 'ymin', 'xmax', 'ymax')


class VOCLayoutError(UserInputError):
    """A VOCdevkit tree that lacks a file the split lists, or holds an unreadable annotation."""


@DATASETS.register_module()
class StrictVOCDataset(VOCDataset):
    """``VOCDataset`` that checks the tree while it indexes it.

    mmdet reads float coordinates already (``int(float(text))``); what it lacks: a missing split
    file, image or annotation only fails later (or deep in a worker) and a malformed XML raises
    without its path; an empty ``<difficult/>`` (labelme's labelme2voc writes one) crashes
    ``int(None)``. Here each is one error naming the path, and an empty ``<difficult/>`` means 0; class
    names are stripped of surrounding whitespace (mmdet would drop ``<name> person </name>`` silently);
    a box with xmax < xmin or ymax < ymin, and an image or XML that is not a regular file, are errors.
    """

    def load_data_list(self) -> list[dict]:
        if not exists(self.ann_file, backend_args=self.backend_args):
            raise VOCLayoutError(
                f'VOC split file not found: {self.ann_file} (expected '
                f'VOCdevkit/<VOC2007|VOC2012>/ImageSets/Main/<split>.txt with one image id per line)')
        return super().load_data_list()

    def parse_data_info(self, img_info: dict) -> dict:
        xml_path = img_info['xml_path']
        img_path = osp.join(self.sub_data_root, img_info['file_name'])
        for what, path in (('image', img_path), ('annotation', xml_path)):
            if not exists(path, backend_args=self.backend_args):
                raise VOCLayoutError(f'VOC {what} not found: {path} (image id {img_info["img_id"]!r} '
                                     f'is listed in {self.ann_file})')
            if osp.exists(path) and not osp.isfile(path):  # a FIFO or device would block the loader
                raise VOCLayoutError(f'VOC {what} {path} is not a regular file (a directory, FIFO or device)')
        try:
            info = super().parse_data_info(img_info)
        except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
            missing = self._missing_field(xml_path) if not isinstance(e, ET.ParseError) else None
            raise VOCLayoutError(f'unparsable VOC annotation {xml_path}: {type(e).__name__}: {e}'
                                 + (f'; {missing}' if missing else '') + ' (expected <annotation> with <size> and '
                                 '<object> entries of <name> and <bndbox> with <xmin>, <ymin>, <xmax>, <ymax>)') from e
        for n, inst in enumerate(info.get('instances', []), 1):
            x1, y1, x2, y2 = inst['bbox']
            if x2 < x1 or y2 < y1:  # would train on a negative-area box
                raise VOCLayoutError(f'{xml_path}: object {n} has xmax < xmin or ymax < ymin (box {inst["bbox"]}, '
                                     '0-based); expected xmin <= xmax and ymin <= ymax')
        return info

    @staticmethod
    def _missing_field(xml_path: str) -> str | None:
        """Name the first field an ``<object>`` lacks (mmdet fails with ``'NoneType' ... 'text'``)."""
        root = ET.parse(xml_path).getroot()
        for n, obj in enumerate(root.findall('object'), 1):
            box = obj.find('bndbox')
            missing = ('name' if not (obj.findtext('name') or '').strip() else
                       'bndbox' if box is None else
                       next((f'bndbox><{f}' for f in BOX_FIELDS if not (box.findtext(f) or '').strip()), None))
            if missing:
                return f'<object> {n} has no <{missing}>'
        return None

    def _parse_instance_info(self, raw_ann_info: ET.ElementTree, minus_one: bool = True) -> list[dict]:
        for node in raw_ann_info.iter('difficult'):
            if not (node.text or '').strip():
                node.text = '0'
        for obj in raw_ann_info.findall('object'):  # ' person\n' (hand-written XML) is the class 'person'
            name = obj.find('name')
            if name is not None and name.text:
                name.text = name.text.strip()
        return super()._parse_instance_info(raw_ann_info, minus_one=minus_one)
