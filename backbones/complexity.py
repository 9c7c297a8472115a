"""Parameters and FLOPs of the ResNet variants as ImageNet classifiers (the paper's Table 5)."""
from __future__ import annotations

import torch
from torch import nn

from .resnet import BagResNet

# Table 5 of the paper: params (M) and GFLOPs as printed, and top-1; independent counts from
# ../shared/reference/paper.md (torchvision resnet50 25.56M / 4.11 GMACs; -C/-D 25.58M, ~4.35 GMACs).
PAPER_TABLE5 = {
    'A': dict(params_m=25, gflops=3.86, top1=76.21, independent_params_m=25.56),
    'B': dict(params_m=25, gflops=4.13, top1=76.66, independent_params_m=25.56),
    'C': dict(params_m=25, gflops=4.34, top1=76.87, independent_params_m=25.58),
    'D': dict(params_m=25, gflops=4.35, top1=77.16, independent_params_m=25.58),
}


class _Classifier(nn.Module):
    def __init__(self, backbone: BagResNet, num_classes: int = 1000):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.out_channels, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.backbone(x)[-1], 1), 1))


def complexity(depth: int = 50, variant: str = 'D', size: int = 224, num_classes: int = 1000) -> dict:
    """Params (M) and multiply-accumulates (G) of an ImageNet classifier with this backbone."""
    from mmengine.analysis import FlopAnalyzer
    model = _Classifier(BagResNet(depth=depth, variant=variant, out_indices=(3,)), num_classes).eval()
    params = sum(p.numel() for p in model.parameters())
    macs = FlopAnalyzer(model, torch.zeros(1, 3, size, size)).unsupported_ops_warnings(False) \
        .uncalled_modules_warnings(False).total()
    return dict(params_m=params / 1e6, gmacs=macs / 1e9)
