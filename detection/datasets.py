"""mmdet's VOCDataset with layout errors that name the file, and annotation-tool XML accepted."""
from __future__ import annotations

import os.path as osp
import xml.etree.ElementTree as ET

from mmengine.fileio import exists
from mmdet.datasets import VOCDataset
from mmdet.registry import DATASETS


class VOCLayoutError(ValueError):
    """A VOCdevkit tree that lacks a file the split lists, or holds an unreadable annotation."""


@DATASETS.register_module()
class StrictVOCDataset(VOCDataset):
    """``VOCDataset`` that checks the tree while it indexes it.

    mmdet reads float coordinates already (``int(float(text))``); what it lacks: a missing split
    file, image or annotation only fails later (or deep in a worker) and a malformed XML raises
    without its path; an empty ``<difficult/>`` (labelme's labelme2voc writes one) crashes
    ``int(None)``. Here each is one error naming the path, and an empty ``<difficult/>`` means 0.
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
        try:
            return super().parse_data_info(img_info)
        except (ET.ParseError, AttributeError, TypeError, ValueError) as e:
            raise VOCLayoutError(f'unparsable VOC annotation {xml_path}: {type(e).__name__}: {e} (expected '
                                 f'<annotation> with <size> and <object><name>/<bndbox> entries)') from e

    def _parse_instance_info(self, raw_ann_info: ET.ElementTree, minus_one: bool = True) -> list[dict]:
        for node in raw_ann_info.iter('difficult'):
            if not (node.text or '').strip():
                node.text = '0'
        return super()._parse_instance_info(raw_ann_info, minus_one=minus_one)
