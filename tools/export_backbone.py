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
import os
import os.path as osp

import torch
from mmengine.config import Config

from backbones.checkpoint import CheckpointError, check_fits, load_weights_file, state_dict_of


def backbone_state(checkpoint: dict, source: str) -> dict:
    state = state_dict_of(checkpoint)
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not backbone:
        raise CheckpointError(f'{source}: no backbone.* tensors; expected a classifier checkpoint written by '
                              f'tools/pretrain.py (keys backbone.* and head.fc.*)')
    return backbone


def model_config(checkpoint: dict, config: str | None, source: str) -> Config:
    if config:
        return Config.fromfile(config)
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not text:
        raise CheckpointError(f'{source} stores no config; pass --config to check the backbone against')
    return Config.fromstring(text, file_format='.py')


def export(ckpt: str, out: str, config: str | None = None) -> int:
    checkpoint = load_weights_file(ckpt)
    state = backbone_state(checkpoint, ckpt)
    cfg = model_config(checkpoint, config, ckpt)
    import classification  # noqa: F401  (registers the classifier)
    from backbones.registry import MODELS
    expected = MODELS.build(cfg.model.backbone).state_dict()
    check_fits(state, expected, f'the backbone of {config or "the stored config"}', ckpt)
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    tmp = f'{out}.tmp'
    try:
        torch.save({k: v.detach().clone().contiguous() for k, v in state.items()}, tmp)
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return len(state)


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
    main()
