"""Evaluation results written next to the checkpoints, atomically (never a half-written file)."""
from __future__ import annotations

import json
import os
import os.path as osp


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, 'item'):  # numpy / torch scalars
        return value.item()
    return value


def write_results_json(results: dict, path: str) -> str:
    """Write ``results`` (metrics, per-class tables, provenance) as JSON to ``path``."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        json.dump(_plain(results), f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    return path
