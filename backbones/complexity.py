"""Parameters and FLOPs (multiply-accumulates) of the paper's networks as ImageNet classifiers: the ResNet
variants of Table 5, and Inception-V3 and MobileNet (1.0) of Tables 2, 4 and 6 next to independent
counts of torchvision's ``inception_v3`` and timm's ``mobilenetv1_100``."""
from __future__ import annotations

import torch
from torch import nn

from .inception import BagInceptionV3
from .mobilenet import BagMobileNetV1
from .resnet import BagResNet

# Table 5 of the paper (He et al., CVPR 2019): params (M) and GFLOPs as printed, and top-1; the independent
# parameter counts are torchvision's resnet50 (25.56M, 4.11 GMACs) and timm's resnet50d (25.58M, ~4.35 GMACs).
PAPER_TABLE5 = {
    'A': dict(params_m=25, gflops=3.86, top1=76.21, independent_params_m=25.56),
    'B': dict(params_m=25, gflops=4.13, top1=76.66, independent_params_m=25.56),
    'C': dict(params_m=25, gflops=4.34, top1=76.87, independent_params_m=25.58),
    'D': dict(params_m=25, gflops=4.35, top1=77.16, independent_params_m=25.58),
}


# The paper's figures for its other two networks (Inception-V3, MobileNet; Tables 2 and 4): params (M) without /
# with Inception-V3's auxiliary head, GMACs at the network's input size, Table 2 / 4 top-1.
PAPER_NETS = {
    'inception_v3': dict(label='Inception-V3', size=299, params_m=23.8, params_aux_m=27.2, gmacs=5.7,
                         top1_baseline=77.32, top1_efficient=77.50),
    'mobilenet': dict(label='MobileNet (1.0)', size=224, params_m=4.2, gmacs=0.57,
                      top1_baseline=69.03, top1_efficient=71.90),
}


class _Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int = 1000):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.backbone(x)[-1], 1), 1))


def count(model: nn.Module, size: int) -> dict:
    """Params (M) and GMACs of ``model`` on one ``size`` x ``size`` image: ``gmacs`` counts every operator
    mmengine's FlopAnalyzer knows (BN and pooling too), ``gmacs_conv_fc`` the convolutions and linear
    layers only, as the papers count (BN can be folded into the convolutions)."""
    from mmengine.analysis import FlopAnalyzer
    model = model.eval()
    params = sum(p.numel() for p in model.parameters())
    analyzer = FlopAnalyzer(model, torch.zeros(1, 3, size, size)).unsupported_ops_warnings(False) \
        .uncalled_modules_warnings(False)
    ops = analyzer.by_operator()
    return dict(params_m=params / 1e6, gmacs=analyzer.total() / 1e9,
                gmacs_conv_fc=(ops.get('conv', 0) + ops.get('linear', 0)) / 1e9)


def complexity(depth: int = 50, variant: str = 'D', size: int = 224, num_classes: int = 1000) -> dict:
    """Params (M) and multiply-accumulates (G) of an ImageNet classifier with this backbone."""
    return count(_Classifier(BagResNet(depth=depth, variant=variant, out_indices=(3,)), num_classes), size)


def net_complexity(name: str, size: int | None = None, num_classes: int = 1000) -> dict:
    """Ours and the independent implementation's params / GMACs for 'inception_v3' or 'mobilenet'.

    Returns ``ours`` and ``reference`` (None where timm is not installed); for Inception-V3 also the
    parameters with torchvision's auxiliary head (``params_aux_m``, ours: plus an ``InceptionAux``).
    """
    if name not in PAPER_NETS:
        raise ValueError(f'name must be one of {sorted(PAPER_NETS)}, got {name!r}')
    size = size or PAPER_NETS[name]['size']
    if name == 'inception_v3':
        from torchvision.models import inception_v3
        from torchvision.models.inception import InceptionAux
        ours = count(_Classifier(BagInceptionV3(out_indices=(3,)), num_classes), size)
        aux = sum(p.numel() for p in InceptionAux(768, num_classes).parameters())
        ours['params_aux_m'] = ours['params_m'] + aux / 1e6
        ref = count(inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=num_classes), size)
        ref['params_aux_m'] = sum(p.numel() for p in inception_v3(
            weights=None, aux_logits=True, init_weights=False, num_classes=num_classes).parameters()) / 1e6
        ref['source'] = 'torchvision inception_v3'
    else:
        ours = count(_Classifier(BagMobileNetV1(width=1.0, out_indices=(3,)), num_classes), size)
        try:
            import timm
        except ImportError:  # timm is a test dependency only
            ref = None
        else:
            ref = count(timm.create_model('mobilenetv1_100', num_classes=num_classes), size)
            ref['source'] = 'timm mobilenetv1_100'
    return dict(ours=ours, reference=ref, paper=PAPER_NETS[name], size=size)
