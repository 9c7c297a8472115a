"""VOC data through the detection glue: layout errors by path, float coordinates, real VOC2011 photos."""
import os
import os.path as osp
import shutil

import pytest
from mmengine.config import Config

from det_helpers import labelme_voc_tree, make_voc_tree

import detection  # noqa: F401  registers StrictVOCDataset & co. in mmdet's scope
from detection import VOCLayoutError

TINY = osp.join(osp.dirname(__file__), '..', 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')


def _build(dataset_cfg):
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    return DATASETS.build(dataset_cfg)


def _dataset_cfg(root, split='test', **kw):
    """The dataset section of the small config, pointed at ``root``."""
    cfg = Config.fromfile(TINY)
    loader = cfg.val_dataloader if split == 'test' else cfg.train_dataloader
    ds = loader.dataset
    ds.update(data_root=osp.join(root, 'VOCdevkit'), **kw)
    return ds


@pytest.fixture(scope='module')
def voc_tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('voc'))
    return root, make_voc_tree(root, {'trainval': 6, 'test': 4}, size=96, seed=3)


def test_generated_tree_loads_with_float_boxes(voc_tree):
    root, drawn = voc_tree
    ds = _build(_dataset_cfg(root, 'trainval'))
    assert ds.metainfo['dataset_type'] == 'VOC2007' and len(ds) == 6
    for i, (img_id, objects) in enumerate(drawn['trainval']):
        info = ds.get_data_info(i)
        assert info['img_id'] == img_id and (info['width'], info['height']) == (96, 96)
        got = [(ds.metainfo['classes'][o['bbox_label']], o['bbox']) for o in info['instances']]
        # VOC's 1-based inclusive pixel boxes, float ones truncated, become 0-based: v -> int(v) - 1
        want = [(name, [int(v) - 1 for v in box]) for name, box in objects]
        assert got == want
    assert any(isinstance(v, float) for _, objs in drawn['trainval'] for _, box in objs for v in box)


def test_missing_split_file_names_the_path(voc_tree):
    root, _ = voc_tree
    cfg = _dataset_cfg(root, ann_file='VOC2007/ImageSets/Main/val.txt')
    with pytest.raises(VOCLayoutError, match=r'VOC split file not found: .*VOCdevkit/VOC2007/ImageSets/Main/val\.txt'):
        _build(cfg)


def test_missing_image_and_annotation_name_the_path(voc_tree, tmp_path):
    root, drawn = voc_tree
    copy = str(tmp_path / 'copy')
    shutil.copytree(root, copy)
    sub = osp.join(copy, 'VOCdevkit', 'VOC2007')
    first, second = drawn['test'][0][0], drawn['test'][1][0]
    os.remove(osp.join(sub, 'JPEGImages', f'{first}.jpg'))
    with pytest.raises(VOCLayoutError, match=rf'VOC image not found: .*VOC2007/JPEGImages/{first}\.jpg'):
        _build(_dataset_cfg(copy))
    shutil.copy(osp.join(root, 'VOCdevkit', 'VOC2007', 'JPEGImages', f'{first}.jpg'), osp.join(sub, 'JPEGImages'))
    os.remove(osp.join(sub, 'Annotations', f'{second}.xml'))
    with pytest.raises(VOCLayoutError, match=rf'VOC annotation not found: .*VOC2007/Annotations/{second}\.xml'):
        _build(_dataset_cfg(copy))


@pytest.mark.parametrize('text, reason', [
    ('<annotation><size><width>96</width><height>96', 'ParseError'),  # truncated file
    ('<annotation><size><width>96</width><height>96</height></size>'
     '<object><name>bus</name><difficult>0</difficult></object></annotation>', 'AttributeError'),  # no bndbox
    ('<annotation><size><width>96</width><height>96</height></size><object><name>bus</name>'
     '<bndbox><xmin>a</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>',
     'ValueError'),  # not a number
])
def test_broken_xml_names_the_path(voc_tree, tmp_path, text, reason):
    root, drawn = voc_tree
    copy = str(tmp_path / 'copy')
    shutil.copytree(root, copy)
    bad = drawn['test'][2][0]
    with open(osp.join(copy, 'VOCdevkit', 'VOC2007', 'Annotations', f'{bad}.xml'), 'w') as f:
        f.write(text)
    with pytest.raises(VOCLayoutError, match=rf'unparsable VOC annotation .*VOC2007/Annotations/{bad}\.xml: {reason}'):
        _build(_dataset_cfg(copy))


def test_real_voc2011_photos_load(tmp_path):
    from mmdet.datasets import VOCDataset
    data_root = labelme_voc_tree(str(tmp_path))
    common = dict(data_root=data_root, ann_file='VOC2011/ImageSets/Main/trainval.txt',
                  data_prefix=dict(sub_data_root='VOC2011/'), test_mode=True, pipeline=[])
    ds = _build(dict(type='StrictVOCDataset', **common))
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == ['2011_000003', '2011_000006', '2011_000025']
    classes = ds.metainfo['classes']
    objects = {ds.get_data_info(i)['img_id']: [(classes[o['bbox_label']], o['bbox'], o['ignore_flag'])
                                               for o in ds.get_data_info(i)['instances']] for i in range(3)}
    assert [len(v) for v in objects.values()] == [2, 4, 3]
    assert [c for v in objects.values() for c, _, _ in v] == ['person'] * 6 + ['bus', 'bus', 'car']
    assert all(ignore == 0 for v in objects.values() for _, _, ignore in v)  # <difficult/> means 0
    # <xmin>254.38461538461536</xmin> ... written by labelme2voc: int(float(v)) - 1
    assert objects['2011_000006'][2][1] == [253, 114, 368, 291]
    assert objects['2011_000003'][0][1] == [190, 106, 312, 328]
    assert (ds.get_data_info(0)['width'], ds.get_data_info(0)['height']) == (500, 338)
    # mmdet's own VOCDataset stops at the empty <difficult/> (int(None)) without naming the file
    with pytest.raises(TypeError):
        _build(dict(type='VOCDataset', **common))
