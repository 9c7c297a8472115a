"""Evaluation results written next to the checkpoints, atomically (never a half-written file)."""
from __future__ import annotations

import json
import os
import os.path as osp
import tempfile

from .guard import UserInputError


class OutputPathError(UserInputError):
    """An output path that would replace something the tool did not create, or cannot be a file."""


def check_output_file(path: str, what: str = 'output', inputs=()) -> str:
    """Before any work: ``path`` can become a file, is none of ``inputs``, and its folder can exist."""
    if osp.isdir(path):
        raise OutputPathError(f'{what} {path} is a directory; expected a file path (e.g. '
                              f'{osp.join(path, "results.json")})')
    for src in inputs:
        if src and osp.exists(src) and osp.exists(path) and osp.samefile(src, path):
            raise OutputPathError(f'{what} {path} is the input {src}; writing it would replace the input: choose '
                                  'another output path')
    probe = osp.dirname(osp.abspath(path))
    while not osp.exists(probe):
        probe = osp.dirname(probe)
    if not osp.isdir(probe):
        raise OutputPathError(f'{what} {path}: {probe} is a file, not a directory')
    return path


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, 'item'):  # numpy / torch scalars
        return value.item()
    return value


def write_results_json(results: dict, path: str) -> str:
    """Write ``results`` (metrics, per-class tables, provenance) as JSON to ``path``; a failure (a full
    disk, a directory in the way) leaves neither a partial file nor a temporary one."""
    check_output_file(path, 'results file')
    text = json.dumps(_plain(results), indent=2, sort_keys=True)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; a results file is as readable as one open() writes
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return path
