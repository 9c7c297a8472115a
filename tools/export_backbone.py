"""Export the backbone of a pretraining checkpoint as a plain dict of tensors (BagResNet keys, no prefix).

    python tools/export_backbone.py work_dirs/resnet50d_tricks/epoch_200.pth work_dirs/r50d_tricks_backbone.pth
        [--config CONFIG] [--format pth|safetensors] [--weights ema|raw]

The file loads with ``torch.load(path, weights_only=True)`` and with a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=path)`` (the det/seg configs' ``--pretrained``). Before
writing, the tensors are checked strictly against the backbone built from --config, or from the
backbone arguments of the config text stored in the checkpoint, read as literal data (never
executed). The output may not be the input, a directory, or an existing file other than a backbone
export; it is written atomically (temporary file, then rename). ``--format safetensors`` writes it with
safetensors instead of torch.save (no pickle; it loads through the same ``--pretrained``/``init_cfg``).
A checkpoint trained with EMAHook gives its EMA weights unless --weights raw (engine/ema.py); --weights ema on
a checkpoint without them is an error.
"""
from __future__ import annotations

from backbones.checkpoint import WEIGHT_FORMATS, backbone_cfg_from_meta, check_weights_destination, \
    convert_weights_file
from engine.cli import read_config
from engine.ema import has_ema, select_weights
from engine.guard import one_line
from safe_read import load_weights_file
from tool_boundary import ToolArgumentParser, run_tool
from user_errors import ConfigError


def backbone_config(checkpoint: dict, config: str | None, source: str) -> dict:
    if config:
        return dict(read_config(config).model.backbone)
    return backbone_cfg_from_meta(checkpoint, source)


def export(ckpt: str, out: str, config: str | None = None, fmt: str = 'pth', weights: str | None = None) -> int:
    check_weights_destination(out, ckpt, fmt)  # before anything is read or built
    read = load_weights_file(ckpt)
    checkpoint, which = select_weights(read, weights, ckpt)  # EMA or raw weights (engine/ema.py)
    if has_ema(read):
        print(f'{ckpt}: exporting its {"EMA" if which == "ema" else "raw (trained)"} weights')
    backbone_cfg = backbone_config(checkpoint, config, ckpt)
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    try:
        backbone = MODELS.build(backbone_cfg)
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f'the backbone {backbone_cfg} does not build: {one_line(e)}') from e
    return convert_weights_file(ckpt, out, backbone, fmt, checkpoint=checkpoint)


def main(argv=None) -> int:
    parser = ToolArgumentParser(description='Export backbone weights from a classifier checkpoint')
    parser.add_argument('checkpoint', help='checkpoint written by tools/pretrain.py')
    parser.add_argument('out', help='output file (plain dict of tensors)')
    parser.add_argument('--config', help='config to check the backbone against (default: the backbone arguments '
                                         'stored in the checkpoint, read as data)')
    parser.add_argument('--format', default='pth', choices=WEIGHT_FORMATS,
                        help='pth: torch.save (default); safetensors: no pickle (the extension must not say otherwise)')
    parser.add_argument('--weights', choices=['ema', 'raw'], default=None,
                        help='of a checkpoint trained with EMAHook: ema (its state_dict; the default where it has an '
                             'ema_state_dict) or raw (the trained weights, in its ema_state_dict)')
    args = parser.parse_args(argv)
    n = export(args.checkpoint, args.out, args.config, args.format, args.weights)
    print(f'exported {n} backbone tensors from {args.checkpoint} to {args.out}')
    return n


if __name__ == '__main__':
    run_tool(main)
