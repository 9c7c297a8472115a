"""What a run reads (config, data roots, checkpoints) and the check, before any work, that its outputs touch
none of it (through the writing layer, safe_write)."""
from __future__ import annotations

import os.path as osp

import safe_write

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
# model keys whose string value names a weights file the run reads
CHECKPOINT_KEYS = ('checkpoint', 'teacher_checkpoint', 'pretrained')


def _walk(node, found: list, keys) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in keys and isinstance(v, str) and v:
                found.append(v)
            else:
                _walk(v, found, keys)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _walk(v, found, keys)


def data_roots(cfg) -> list[str]:
    """Every dataset's ``data_root`` (ConcatDataset / RepeatDataset wrappers included)."""
    found: list[str] = []
    for key in LOADERS:
        _walk((cfg.get(key) or {}).get('dataset'), found, ('data_root',))
    return sorted({osp.abspath(r) for r in found})


def checkpoints_read(cfg) -> list[str]:
    """Local weights files the run reads: ``load_from`` and the checkpoints its model config names."""
    found: list[str] = [cfg.load_from] if cfg.get('load_from') else []
    _walk(cfg.get('model'), found, CHECKPOINT_KEYS)
    return sorted({osp.abspath(p) for p in found if '://' not in p and osp.exists(p)})


def check_run_outputs(cfg) -> None:
    """Before the Runner exists: the work dir and the config copy it will hold can be written without touching
    an input (the config, its folder, a data root, a checkpoint being read) or a file the project did not
    write."""
    config = cfg.filename if getattr(cfg, 'filename', None) else None
    files = checkpoints_read(cfg) + ([config] if config else [])
    roots = data_roots(cfg)
    safe_write.check_work_dir(cfg.work_dir, config=config, input_files=files, input_dirs=roots)
    copy = osp.join(cfg.work_dir, osp.basename(config)) if config else None
    if copy and osp.realpath(copy) != osp.realpath(config):  # the config may be a run's own copy, run again
        safe_write.check_output(copy, 'config copy', input_files=files)
