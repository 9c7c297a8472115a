"""Convert ResNet weights from torchvision, timm, mmdet/mmseg/mmpretrain (ResNet, ResNetV1c, ResNetV1d)
or a bagtricks checkpoint into a bagtricks backbone file (plain tensors, loads with weights_only=True).

    python tools/convert_weights.py SRC DST --depth 50 --variant D [--format pth|safetensors]
    python tools/convert_weights.py timm://resnet50d.gluon_in1k r50d_gluon.safetensors --format safetensors

SRC is a file (.pth, or .safetensors: read without pickle) or a pretrained name as --pretrained takes it
(timm://<model>.<tag> from the Hugging Face cache, torchvision://NAME, open-mmlab://NAME from mmengine's;
nothing is downloaded unless BAGTRICKS_DOWNLOAD=1).

The result is checked against BagResNet(depth, variant) before it is written; a file of another
architecture stops with the first mismatching keys.
"""
import argparse

from backbones import BagResNet
from backbones.checkpoint import WEIGHT_FORMATS, check_weights_destination, convert_weights_file
from backbones.pretrained import resolve_checkpoint
from tool_boundary import ToolArgumentParser, run_tool


def main(argv=None):
    p = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='weights file to convert, or a name such as timm://resnet50d.gluon_in1k')
    p.add_argument('dst', help='backbone file to write')
    p.add_argument('--depth', type=int, default=50, choices=[18, 34, 50, 101, 152])
    p.add_argument('--variant', default='D', choices=list('ABCD'),
                   help='A: caffe-style ResNet, B: torchvision resnet50 / mmdet ResNet, C: ResNetV1c, D: ResNetV1d / timm resnet50d')
    p.add_argument('--format', default='pth', choices=WEIGHT_FORMATS,
                   help='pth: torch.save (default); safetensors: no pickle (the extension must not say otherwise)')
    args = p.parse_args(argv)
    check_weights_destination(args.dst, None, args.format)  # before a name is resolved (or downloaded)
    src = resolve_checkpoint(args.src)
    n = convert_weights_file(src, args.dst, BagResNet(depth=args.depth, variant=args.variant), args.format)
    print(f'wrote {n} tensors for ResNet-{args.depth}-{args.variant} to {args.dst}')


if __name__ == '__main__':
    run_tool(main)
