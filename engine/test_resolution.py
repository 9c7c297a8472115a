"""Evaluation at several test resolutions (the FixRes effect): ``tools/test_cls.py --sizes 224,256,288``.

For each size S the test pipeline's centre crop becomes S and its resize (shorter side) round(S / crop_ratio),
half up, with the paper's crop ratio 0.875 unless told otherwise (224 -> 256, the paper's Section 2.1; Inception-V3's
299 -> 342 is the same ratio). Nothing else of the pipeline changes.

:class:`MultiSizeTestLoop` is mmengine's TestLoop run once per size within one ``Runner.test()``: one model, one
checkpoint read, one log; the test dataloader is rebuilt from the config's own dataloader config at each size and
the standard hooks run per size (``before_test_epoch`` .. ``after_test_epoch``), so each size is exactly the
evaluation a plain run with that pipeline (``--cfg-options test_dataloader.dataset.pipeline.0.size=...``) makes.
The ResultsHook writes one record of the one results schema per size, to the file the loop names for it
(:func:`files_per_size`), with ``test_size``, ``test_resize`` and ``crop_ratio`` in its provenance.
"""
from __future__ import annotations

import copy
import math
import os.path as osp
from typing import Sequence

from mmengine.registry import LOOPS
from mmengine.runner.loops import TestLoop, _parse_losses

from user_errors import ConfigError

from .results import check_output_file

PAPER_CROP_RATIO = 0.875  # 224 / 256 (Section 2.1)
MIN_SIZE = 8              # a crop below this is no evaluation of an ImageNet network
MAX_SIZE = 4096


def resize_for(size: int, crop_ratio: float) -> int:
    """The shorter side the image is resized to before a centre crop of ``size``: round(size / crop_ratio), half up."""
    return int(math.floor(size / crop_ratio + 0.5))


def _kind(step: dict) -> str:
    return str(step.get('type', '')).rsplit('/', 1)[-1].rsplit('.', 1)[-1]


def _resize_and_crop(pipeline, where: str) -> tuple[int, int]:
    """Indices of the pipeline's resize (shorter side) and of the centre crop after it."""
    if not isinstance(pipeline, (list, tuple)) or not all(isinstance(t, dict) for t in pipeline):
        raise ConfigError(f'{where}: --sizes needs the test pipeline as a list of transforms, '
                          f'got {type(pipeline).__name__}')
    resizes = [i for i, t in enumerate(pipeline) if _kind(t) == 'Resize']
    crops = [i for i, t in enumerate(pipeline) if _kind(t) == 'CenterCrop']
    shown = ', '.join(str(t.get('type')) for t in pipeline)
    expected = ("a resize of the shorter side followed by a centre crop, as configs/cls/_base_/imagenet.py: "
                "dict(type='torchvision/Resize', size=256), dict(type='torchvision/CenterCrop', size=224)")
    if len(resizes) != 1 or len(crops) != 1 or crops[0] < resizes[0]:
        raise ConfigError(f'{where} is [{shown}]; --sizes needs {expected}')
    resize = pipeline[resizes[0]]
    size = resize.get('size')
    if isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    if not isinstance(size, int) or isinstance(size, bool) or resize.get('max_size') is not None:
        raise ConfigError(f'{where}: its {resize.get("type")} has size={size!r}'
                          f'{", max_size" if resize.get("max_size") is not None else ""}; --sizes needs {expected}')
    return resizes[0], crops[0]


def config_size(loader_cfg: dict, where: str = 'test_dataloader.dataset.pipeline') -> int:
    """The centre-crop size of a test dataloader config (the config's own test resolution)."""
    pipeline = _pipeline(loader_cfg, where)
    _, crop = _resize_and_crop(pipeline, where)
    size = pipeline[crop].get('size')
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    elif isinstance(size, (list, tuple)) and len(size) == 1:
        size = size[0]
    if not isinstance(size, int) or isinstance(size, bool):
        raise ConfigError(f'{where}: its CenterCrop size is {size!r}; expected one square size (an integer)')
    return size


def _pipeline(loader_cfg, where: str):
    dataset = loader_cfg.get('dataset') if isinstance(loader_cfg, dict) else None
    if not isinstance(dataset, dict) or 'pipeline' not in dataset:
        raise ConfigError(f'{where}: --sizes needs a test_dataloader whose dataset has a pipeline; got '
                          f'{type(loader_cfg).__name__ if not isinstance(loader_cfg, dict) else "no dataset.pipeline"}')
    return dataset['pipeline']


def at_size(loader_cfg: dict, size: int, crop_ratio: float,
            where: str = 'test_dataloader.dataset.pipeline') -> dict:
    """A copy of a test dataloader config whose pipeline resizes to ``resize_for(size, crop_ratio)`` and
    centre-crops ``size``; every other step and setting unchanged."""
    loader_cfg = copy.deepcopy(loader_cfg)
    pipeline = _pipeline(loader_cfg, where)
    r, c = _resize_and_crop(pipeline, where)
    pipeline[r]['size'] = resize_for(size, crop_ratio)
    pipeline[c]['size'] = size
    return loader_cfg


def files_per_size(out: str, sizes: Sequence[int]) -> list[str]:
    """One results file per size from the tool's results path ``out``: ``{size}`` in it is replaced by the size,
    otherwise ``_<size>`` goes before the extension (``test_results.json`` -> ``test_results_224.json``)."""
    if '{size}' in out:
        return [out.replace('{size}', str(s)) for s in sizes]
    stem, ext = osp.splitext(out)
    return [f'{stem}_{s}{ext}' for s in sizes]


def parse_sizes(text: str) -> list[int]:
    """argparse ``type=`` of --sizes: distinct integers in MIN_SIZE..MAX_SIZE, comma-separated."""
    import argparse
    items = [t.strip() for t in str(text).split(',')]
    expected = f'comma-separated distinct integers from {MIN_SIZE} to {MAX_SIZE}, e.g. 224,256,288'
    shown = repr(text if len(text) <= 60 else text[:60] + '...')
    try:
        sizes = [int(t) for t in items]
    except ValueError:
        raise argparse.ArgumentTypeError(f'{shown}: expected {expected}') from None
    if not sizes or any(not MIN_SIZE <= s <= MAX_SIZE for s in sizes) or len(set(sizes)) != len(sizes):
        raise argparse.ArgumentTypeError(f'{shown}: expected {expected}')
    return sizes


def parse_crop_ratio(text: str) -> float:
    """argparse ``type=`` of --crop-ratio: a number in 0.1..1 (crop / resize; 1 = no border cut)."""
    import argparse
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = float('nan')
    if not (math.isfinite(value) and 0.1 <= value <= 1.0):
        shown = repr(text if len(text) <= 40 else text[:40] + '...')
        raise argparse.ArgumentTypeError(f"{shown}: expected a number from 0.1 to 1 (crop / resize, the paper's 0.875)")
    return value


def add_size_args(parser) -> None:
    """tools/test_cls.py's --sizes and --crop-ratio."""
    parser.add_argument('--sizes', type=parse_sizes, metavar='S1,S2,...',
                        help='evaluate at each of these test sizes (centre crop S after resizing the shorter side to '
                             'round(S / crop ratio)); one results record per size, in --out with _<S> before its '
                             'extension (or {size} in --out replaced): default <work-dir>/test_results_<S>.json')
    parser.add_argument('--crop-ratio', type=parse_crop_ratio, metavar='R',
                        help=f'crop / resize of --sizes (default {PAPER_CROP_RATIO}, the paper\'s 224/256); given '
                             'alone, the config\'s own crop size (224; Inception-V3 299) at this ratio')


def apply_test_sizes(cfg, sizes: Sequence[int] | None, crop_ratio: float | None, out: str,
                     inputs: Sequence[str] = ()) -> list[dict]:
    """Make ``cfg`` evaluate at ``sizes`` (None: the config's own crop size) with ``crop_ratio`` (None: 0.875):
    its test loop becomes :class:`MultiSizeTestLoop`, each size's pipeline and results file checked now, before
    the Runner exists. Returns one ``dict(test_size, test_resize, crop_ratio, file)`` per size."""
    loader = cfg.get('test_dataloader')
    if not isinstance(loader, dict):
        raise ConfigError(f'config {cfg.filename}: --sizes needs a test_dataloader (it is {loader!r})')
    crop_ratio = PAPER_CROP_RATIO if crop_ratio is None else float(crop_ratio)
    sizes = list(sizes) if sizes else [config_size(loader)]
    test_cfg = dict(cfg.get('test_cfg') or {})
    if test_cfg.get('type', 'TestLoop') not in ('TestLoop', 'MultiSizeTestLoop'):
        raise ConfigError(f'test_cfg.type = {test_cfg["type"]!r}: --sizes replaces the plain TestLoop; expected none '
                          'or TestLoop')
    for size in sizes:
        at_size(loader, size, crop_ratio)  # a pipeline it cannot rewrite fails here, before anything is built
    files = files_per_size(out, sizes)
    for f in files:
        check_output_file(f, 'results file', inputs=inputs)
    test_cfg.update(type='MultiSizeTestLoop', sizes=sizes, crop_ratio=crop_ratio,
                    results_files=[osp.abspath(f) for f in files])
    cfg.test_cfg = test_cfg
    return [dict(test_size=s, test_resize=resize_for(s, crop_ratio), crop_ratio=crop_ratio, file=f)
            for s, f in zip(sizes, files)]


@LOOPS.register_module()
class MultiSizeTestLoop(TestLoop):
    """mmengine's TestLoop once per test size, within one ``Runner.test()`` (hooks ``before_test`` and
    ``after_test`` once, ``before_test_epoch`` .. ``after_test_epoch`` per size). ``run()`` returns
    ``{size: metrics}``. While a size runs, ``results_file`` and ``results_provenance`` tell the ResultsHook
    where that size's record goes and what it adds to its provenance.

    Args:
        sizes: centre-crop sizes, evaluated in this order.
        crop_ratio: crop / resize (0.875: 224 after resizing to 256).
        results_files: one results file per size (absolute paths), or None: ``test_results_<size>.json`` in the
            work dir.
    """

    def __init__(self, runner, dataloader, evaluator, sizes: Sequence[int], crop_ratio: float = PAPER_CROP_RATIO,
                 results_files: Sequence[str] | None = None, fp16: bool = False):
        if not isinstance(dataloader, dict):
            raise ConfigError('MultiSizeTestLoop needs the test dataloader as a config dict (it rebuilds it per size)')
        if not sizes:
            raise ConfigError('MultiSizeTestLoop: sizes is empty; expected at least one test size')
        self.sizes = [int(s) for s in sizes]
        self.crop_ratio = float(crop_ratio)
        files = list(results_files) if results_files else [
            osp.join(runner.work_dir, f) for f in files_per_size('test_results.json', self.sizes)]
        if len(files) != len(self.sizes):
            raise ConfigError(f'MultiSizeTestLoop: {len(files)} results files for {len(self.sizes)} sizes')
        self._files = files
        self._loader_cfg = copy.deepcopy(dataloader)
        self.results_file: str | None = None
        self.results_provenance: dict | None = None
        super().__init__(runner, at_size(self._loader_cfg, self.sizes[0], self.crop_ratio), evaluator, fp16)

    def _use_size(self, i: int) -> None:
        size = self.sizes[i]
        if i:
            diff_rank_seed = self.runner._randomness_cfg.get('diff_rank_seed', False)  # as mmengine's TestLoop
            self.dataloader = self.runner.build_dataloader(at_size(self._loader_cfg, size, self.crop_ratio),
                                                           seed=self.runner.seed, diff_rank_seed=diff_rank_seed)
        self.results_file = self._files[i]
        self.results_provenance = dict(test_size=size, test_resize=resize_for(size, self.crop_ratio),
                                       crop_ratio=self.crop_ratio)

    def run(self) -> dict:
        self.runner.call_hook('before_test')
        by_size = {}
        for i, size in enumerate(self.sizes):
            self._use_size(i)
            self.runner.logger.info(f'test at size {size}: resize {self.results_provenance["test_resize"]}, '
                                    f'centre crop {size} (crop ratio {self.crop_ratio})')
            self.runner.call_hook('before_test_epoch')
            self.runner.model.eval()
            self.test_loss.clear()
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch)
            metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
            if self.test_loss:
                metrics.update(_parse_losses(self.test_loss, 'test'))
            self.runner.call_hook('after_test_epoch', metrics=metrics)
            by_size[size] = metrics
        self.results_file = self.results_provenance = None
        self.runner.call_hook('after_test')
        return by_size
