"""Speed switches that must not change results: channels-last convolutions, and img/s in the log."""
import glob
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import backbones  # noqa: F401
from backbones.resnet import BagResNet
from cls_helpers import REPO, make_shapes_imagenet, run_tool, tiny_data_options


@pytest.mark.parametrize('variant', ['A', 'D'])
def test_channels_last_backbone_computes_the_same(variant):
    torch.manual_seed(0)
    ref = BagResNet(depth=18, variant=variant, base_channels=16, stem_channels=32)
    cl = BagResNet(depth=18, variant=variant, base_channels=16, stem_channels=32, channels_last=True)
    cl.load_state_dict(ref.state_dict())  # a checkpoint moves between the two layouts unchanged
    assert cl.conv1.weight.is_contiguous(memory_format=torch.channels_last) if variant == 'A' else \
        cl.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not ref.layer1[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)
    for mode in ('train', 'eval'):
        getattr(ref, mode)(), getattr(cl, mode)()
        xr, xc = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_r, out_c = ref(xr), cl(xc)
        for a, b in zip(out_r, out_c):
            assert b.is_contiguous()  # NCHW out: consumers such as mmcv's RoIAlign index memory as NCHW
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4, rtol=1e-4)
        sum(o.square().mean() for o in out_r).backward()
        sum(o.square().mean() for o in out_c).backward()
        assert torch.allclose(xr.grad, xc.grad, atol=1e-5, rtol=1e-3)
        g_ref, g_cl = ref.layer2[0].conv1.weight.grad, cl.layer2[0].conv1.weight.grad
        assert torch.allclose(g_ref, g_cl, atol=1e-4, rtol=1e-3)
        ref.zero_grad(), cl.zero_grad()


def test_channels_last_faster_rcnn_detects_the_same():
    """The whole detector of the Table 7 configs (FPN, RPN, RoIAlign) with and without channels-last."""
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'det', 'faster-rcnn_r50d-cosine_fpn_voc0712.py'))
    assert cfg.model.backbone.channels_last is True  # the shipped default for detection
    models = []
    for cl in (False, True):
        model_cfg = cfg.model.copy()
        model_cfg.backbone = dict(cfg.model.backbone, depth=18, channels_last=cl, init_cfg=None)
        model_cfg.neck = dict(cfg.model.neck, in_channels=[64, 128, 256, 512])
        torch.manual_seed(0)
        with DefaultScope.overwrite_default_scope('mmdet'):
            models.append(MODELS.build(model_cfg).eval())
    models[1].load_state_dict(models[0].state_dict())
    h, w = 192, 256
    gen = torch.Generator().manual_seed(1)
    img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8, generator=gen)
    meta = dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0), pad_shape=(h, w),
                batch_input_shape=(h, w))
    with torch.no_grad():
        feats = []
        for model in models:
            data = model.data_preprocessor(dict(inputs=[img], data_samples=[DetDataSample(metainfo=meta)]))
            feats.append(model.extract_feat(data['inputs']))
            rpn = model.rpn_head.predict(feats[-1], data['data_samples'], rescale=False)
            rois = model.roi_head.predict(feats[-1], rpn, data['data_samples'], rescale=False)[0]
            feats[-1] = (feats[-1], rpn[0].bboxes, rois.scores)
    (fa, rpn_a, scores_a), (fb, rpn_b, scores_b) = feats
    for a, b in zip(fa, fb):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert torch.allclose(rpn_a[:50], rpn_b[:50], atol=1e-2)  # the top proposals, same boxes
    n = min(len(scores_a), len(scores_b), 20)
    assert n > 0 and torch.allclose(scores_a[:n], scores_b[:n], atol=1e-3)


def test_log_lines_show_images_per_second(tmp_path):
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=6, per_class={'train': 4, 'val': 1}, size=32)
    work = tmp_path / 'work'
    proc = run_tool('pretrain.py', osp.join(REPO, 'configs', 'cls', 'resnet50d_efficient.py'), '--work-dir',
                    str(work), '--cfg-options', *tiny_data_options(data, size=32, batch=4), 'model.num_classes=6',
                    'train_cfg.max_epochs=1', 'param_scheduler.0.end=1',  # the 5-epoch warmup within the run
                    'default_hooks.logger.interval=2', 'log_processor.window_size=1')
    log = proc.stdout + proc.stderr
    lines = [line for line in log.splitlines() if 'Epoch(train)' in line and 'eta:' in line]
    assert len(lines) == 3  # 24 images / batch 4 = 6 iterations, a line every 2
    for line in lines:
        m = re.search(r'eta: \S+\s+img/s: ([\d.]+)\s+time: ([\d.]+)', line)
        assert m, line  # right after the ETA
        assert float(m.group(1)) == pytest.approx(4 / float(m.group(2)), rel=0.02)  # batch 4 x 1 process / time
    scalars = glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0]) if 'loss' in line]
    assert len(rows) == 3 and all(r['img_per_s'] == pytest.approx(4 / r['time'], rel=1e-6) for r in rows)
