"""Export the backbone of a pretraining checkpoint as a plain dict of tensors (BagResNet keys, no prefix).

    python tools/export_backbone.py work_dirs/resnet50d_tricks/epoch_200.pth work_dirs/r50d_tricks_backbone.pth
        [--config CONFIG] [--format pth|safetensors]

The file loads with ``torch.load(path, weights_only=True)`` and with a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=path)`` (the det/seg configs' ``--pretrained``). Before
writing, the tensors are checked strictly against the backbone built from --config, or from the
backbone arguments of the config text stored in the checkpoint, read as literal data (never
executed). The output may not be the input, a directory, or an existing file other than a backbone
export; it is written atomically (temporary file, then rename). ``--format safetensors`` writes it with
safetensors instead of torch.save (no pickle; it loads through the same ``--pretrained``/``init_cfg``).
"""
from __future__ import annotations

from backbones.checkpoint import WEIGHT_FORMATS, backbone_cfg_from_meta, check_weights_destination, \
    convert_weights_file
from engine.cli import read_config
from engine.guard import one_line
from safe_read import load_weights_file
from tool_boundary import ToolArgumentParser, run_tool
from user_errors import ConfigError


def backbone_config(checkpoint: dict, config: str | None, source: str) -> dict:
    if config:
        return dict(read_config(config).model.backbone)
    return backbone_cfg_from_meta(checkpoint, source)


def export(ckpt: str, out: str, config: str | None = None, fmt: str = 'pth') -> int:
    check_weights_destination(out, ckpt, fmt)  # before anything is read or built
    backbone_cfg = backbone_config(load_weights_file(ckpt), config, ckpt)
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    try:
        backbone = MODELS.build(backbone_cfg)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f'the backbone {backbone_cfg} does not build: {one_line(e)}') from e
    return convert_weights_file(ckpt, out, backbone, fmt)


def main(argv=None) -> int:
    parser = ToolArgumentParser(description='Export backbone weights from a classifier checkpoint')
    parser.add_argument('checkpoint', help='checkpoint written by tools/pretrain.py')
    parser.add_argument('out', help='output file (plain dict of tensors)')
    parser.add_argument('--config', help='config to check the backbone against (default: the backbone arguments '
                                         'stored in the checkpoint, read as data)')
    parser.add_argument('--format', default='pth', choices=WEIGHT_FORMATS,
                        help='pth: torch.save (default); safetensors: no pickle (the extension must not say otherwise)')
    args = parser.parse_args(argv)
    n = export(args.checkpoint, args.out, args.config, args.format)
    print(f'exported {n} backbone tensors from {args.checkpoint} to {args.out}')
    return n


if __name__ == '__main__':
    run_tool(main)
