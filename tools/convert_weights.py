"""Convert ResNet weights from torchvision, timm, mmdet/mmseg/mmpretrain (ResNet, ResNetV1c, ResNetV1d)
or a bagtricks checkpoint into a bagtricks backbone file (plain tensors, loads with weights_only=True).

    python tools/convert_weights.py SRC DST --depth 50 --variant D

The result is checked against BagResNet(depth, variant) before it is written; a file of another
architecture stops with the first mismatching keys.
"""
import argparse

from backbones import BagResNet
from backbones.checkpoint import convert_weights_file
from tool_boundary import ToolArgumentParser, run_tool


def main(argv=None):
    p = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='weights file to convert')
    p.add_argument('dst', help='backbone file to write')
    p.add_argument('--depth', type=int, default=50, choices=[18, 34, 50, 101, 152])
    p.add_argument('--variant', default='D', choices=list('ABCD'),
                   help='A: caffe-style ResNet, B: torchvision resnet50 / mmdet ResNet, C: ResNetV1c, D: ResNetV1d / timm resnet50d')
    args = p.parse_args(argv)
    n = convert_weights_file(args.src, args.dst, BagResNet(depth=args.depth, variant=args.variant))
    print(f'wrote {n} tensors for ResNet-{args.depth}-{args.variant} to {args.dst}')


if __name__ == '__main__':
    run_tool(main)
