"""mmdet's Faster R-CNN and mmseg's FCN-D8, from the toolboxes' own configs, run on our ResNet-D-50."""
import torch
from mmengine.hub import get_config
from mmengine.registry import DefaultScope
from mmengine.optim import OptimWrapper

import backbones  # noqa: F401  registers bagtricks.BagResNet


def _swap_backbone(cfg, defaults, **kw):
    keep = {k: v for k, v in cfg.model.backbone.items() if k not in ('type', 'init_cfg')}
    cfg.model.backbone = dict(keep, type='bagtricks.BagResNet', defaults=defaults, variant='D', depth=50, **kw)
    return cfg


def _step_and_infer(model, data):
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    log_vars = model.train_step(data, optim)
    assert torch.isfinite(torch.stack([v for k, v in log_vars.items() if 'loss' in k])).all()
    model.eval()
    with torch.no_grad():
        return log_vars, model.test_step(data)


def test_faster_rcnn_from_mmdet_config_with_resnet_d50():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData
    register_all_modules(init_default_scope=False)
    cfg = _swap_backbone(get_config('mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'), 'mmdet')
    assert cfg.model.backbone.style == 'pytorch' and cfg.model.backbone.frozen_stages == 1
    with DefaultScope.overwrite_default_scope('mmdet'):  # only here: later tests build in other scopes
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'BagResNet' and model.backbone.variant == 'D'

    h, w = 160, 192
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0),
                                         pad_shape=(h, w), batch_input_shape=(h, w)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 30., 90., 120.], [100., 40., 180., 150.]]),
                                       labels=torch.tensor([3, 14]))
    data = dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)], data_samples=[sample])
    log_vars, preds = _step_and_infer(model, data)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_bbox'} <= set(log_vars)
    assert len(preds) == 1 and preds[0].pred_instances.bboxes.shape[-1] == 4
    # the frozen stem and first stage received no update
    assert not any(p.requires_grad for p in model.backbone.layer1.parameters())


def test_fcn_d8_from_mmseg_config_with_resnet_d50():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    from mmengine.structures import PixelData
    register_all_modules(init_default_scope=False)
    cfg = get_config('mmseg::fcn/fcn_r50-d8_4xb4-80k_ade20k-512x512.py')
    cfg.model.pretrained = None
    cfg.norm_cfg = cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a process group
    cfg.model.decode_head.norm_cfg = cfg.model.auxiliary_head.norm_cfg = cfg.norm_cfg
    cfg = _swap_backbone(cfg, 'mmseg')
    assert tuple(cfg.model.backbone.dilations) == (1, 1, 2, 4) and tuple(cfg.model.backbone.strides) == (1, 2, 1, 1)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()

    h = w = 64
    feats = model.backbone(torch.zeros(1, 3, h, w))
    assert [f.shape[-1] for f in feats] == [w // 4, w // 8, w // 8, w // 8]  # output stride 8
    sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, h, w)))
    data = dict(inputs=[torch.randint(0, 255, (3, h, w), dtype=torch.uint8)], data_samples=[sample])
    log_vars, preds = _step_and_infer(model, data)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(log_vars)
    assert preds[0].pred_sem_seg.data.shape == (1, h, w)
