"""Export the backbone of a pretraining checkpoint as a plain dict of tensors (BagResNet keys, no prefix).

    python tools/export_backbone.py work_dirs/resnet50d_tricks/epoch_200.pth work_dirs/r50d_tricks_backbone.pth
        [--config CONFIG]

The file loads with ``torch.load(path, weights_only=True)`` and with a backbone's
``init_cfg=dict(type='Pretrained', checkpoint=path)`` (the det/seg configs' ``--pretrained``). Before
writing, the tensors are checked strictly against the backbone built from --config, or from the
config stored in the checkpoint. The file is written atomically (temporary file, then rename).
"""
from __future__ import annotations

import argparse

from mmengine.config import Config

from backbones.checkpoint import CheckpointError, convert_weights_file, load_weights_file
from engine import run_tool


def model_config(checkpoint: dict, config: str | None, source: str) -> Config:
    if config:
        return Config.fromfile(config)
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not text:
        raise CheckpointError(f'{source} stores no config; pass --config to check the backbone against')
    return Config.fromstring(text, file_format='.py')


def export(ckpt: str, out: str, config: str | None = None) -> int:
    cfg = model_config(load_weights_file(ckpt), config, ckpt)
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    return convert_weights_file(ckpt, out, MODELS.build(cfg.model.backbone))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Export backbone weights from a classifier checkpoint')
    parser.add_argument('checkpoint', help='checkpoint written by tools/pretrain.py')
    parser.add_argument('out', help='output file (plain dict of tensors)')
    parser.add_argument('--config', help='config to check the backbone against (default: the one in the checkpoint)')
    args = parser.parse_args(argv)
    n = export(args.checkpoint, args.out, args.config)
    print(f'exported {n} backbone tensors from {args.checkpoint} to {args.out}')
    return n


if __name__ == '__main__':
    run_tool(main)
