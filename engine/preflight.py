"""Checks that run before training: fast, and before any checkpoint can be written.

:func:`check_config` runs before the Runner exists (it would create the work dir); :class:`PreflightHook`
runs first at ``before_train``, on the Runner's own train dataset (built once, not twice): the head's
class count matches the data, and every image of the first batch decodes strictly and passes the
pipeline. The datasets check their own layout (root, split files, annotations) while they index it.
"""
from __future__ import annotations

import itertools
import random
from contextlib import contextmanager

import numpy as np
import torch
from mmengine.hooks import Hook

from user_errors import PreflightError, UserInputError

from .guard import one_line
from .valid_values import check_values


def check_config(cfg) -> None:
    """Static checks of the resolved config (before the Runner creates the work dir): every value in range
    and every relation between values (engine.valid_values)."""
    check_values(cfg)


def head_class_counts(model_cfg, path='model') -> list[tuple[str, int]]:
    """Every ``num_classes`` in the model config, with where it sits."""
    found = []
    if isinstance(model_cfg, dict):
        for k, v in model_cfg.items():
            if k == 'num_classes' and isinstance(v, int):
                found.append((f'{path}.{k}', v))
            elif isinstance(v, (dict, list, tuple)):
                found += head_class_counts(v, f'{path}.{k}')
    elif isinstance(model_cfg, (list, tuple)):
        for i, v in enumerate(model_cfg):
            found += head_class_counts(v, f'{path}.{i}')
    return found


def check_class_count(model_cfg, dataset) -> None:
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if not classes:
        return
    for where, n in head_class_counts(model_cfg):
        if n != len(classes):
            raise PreflightError(f'{where} = {n} but the training data has {len(classes)} classes '
                                 f'({", ".join(map(str, classes[:5]))}{", ..." if len(classes) > 5 else ""}); '
                                 f'set {where}={len(classes)}')


@contextmanager
def preserved_rng():
    """Leave torch's, numpy's and Python's global RNG as they were (the check must not shift training)."""
    state = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(state[0])
        np.random.set_state(state[1])
        random.setstate(state[2])


def image_path(dataset, idx: int) -> str | None:
    if hasattr(dataset, 'get_data_info'):
        info = dataset.get_data_info(idx)
        return info.get('img_path') if isinstance(info, dict) else None
    return None


def decode_strictly(path: str) -> None:
    """Decode fully with PIL, which refuses truncated files (OpenCV and libjpeg patch them with grey)."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise PreflightError(f'{path}: image does not decode ({one_line(e)}); fix or remove the file') from e


def first_batch_indices(loader) -> list[int]:
    sampler = getattr(loader.batch_sampler, 'sampler', None) or loader.sampler
    size = loader.batch_size or getattr(loader.batch_sampler, 'batch_size', 1)
    # InfiniteSampler iterates one shared generator (closing a second iterator would close it):
    # read the same first indices from a fresh one
    # mmengine private InfiniteSampler._indices_of_rank: no public API for a fresh index stream; checked against
    # mmengine 0.10.7
    indices = sampler._indices_of_rank() if hasattr(sampler, '_indices_of_rank') else iter(sampler)
    return [int(i) for i in itertools.islice(indices, size)]


def check_first_batch(loader) -> int:
    """Decode and transform the images of the first batch in this process. Returns how many."""
    dataset = loader.dataset
    indices = first_batch_indices(loader)
    with preserved_rng():
        for idx in indices:
            path = image_path(dataset, idx)
            if path and getattr(dataset, 'on_unreadable', 'error') != 'skip':  # the user chose to skip bad files
                decode_strictly(path)
            try:
                dataset[idx]
            except UserInputError:
                raise
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise PreflightError(f'first training batch, sample {idx}'
                                     f'{f" ({path})" if path else ""}: {type(e).__name__}: {one_line(e)}') from e
    return len(indices)


class PreflightHook(Hook):
    """Runs the data checks once, before the first iteration (also before the first after a resume)."""

    priority = 'HIGHEST'

    def before_train(self, runner) -> None:
        loader = runner.train_loop.dataloader
        check_class_count(runner.cfg.model, loader.dataset)
        n = check_first_batch(loader)
        runner.logger.info(f'preflight: {n} images of the first batch decode; class count matches the data')
