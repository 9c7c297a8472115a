"""tools/test_cls.py --sizes / --crop-ratio (engine/test_resolution.py): one checkpoint evaluated at several test
sizes in one run, one record of the one results schema per size, each equal to a plain run at that size."""
from __future__ import annotations

import os
import os.path as osp
import re

import pytest
from mmengine.config import Config

from cls_helpers import REPO, tiny_data_options
from engine.cli import read_config
from engine.results import read_results
from engine.test_resolution import (PAPER_CROP_RATIO, apply_test_sizes, at_size, config_size, files_per_size,
                                    resize_for)
from scale_helpers import run_tool
from user_errors import ConfigError, UserInputError

CLS = osp.join(REPO, 'configs', 'cls')


# -- the pipeline at a size -------------------------------------------------------------------------------------
def test_resize_is_size_over_crop_ratio_rounded_half_up():
    assert [resize_for(s, 0.875) for s in (224, 256, 288, 299, 320, 32, 40)] == [256, 293, 329, 342, 366, 37, 46]
    assert resize_for(224, 1.0) == 224 and resize_for(7, 0.7) == 10 and resize_for(5, 2 / 3) == 8  # 7.5 -> 8


@pytest.mark.parametrize('config, size', [('resnet50d_tricks.py', 224), ('mobilenet_baseline.py', 224),
                                          ('inception_v3_tricks.py', 299), ('fashion_d_tricks.py', 32)])
def test_the_configs_own_size_at_the_papers_ratio_is_the_configs_own_pipeline(config, size):
    cfg = read_config(osp.join(CLS, config))
    assert config_size(cfg.test_dataloader) == size
    if config.startswith('fashion'):  # Resize(32) + CenterCrop(32): ratio 1
        assert at_size(cfg.test_dataloader, size, 1.0) == cfg.test_dataloader
    else:  # 224 / 256 and Inception-V3's 299 / 342 are the paper's 0.875
        assert at_size(cfg.test_dataloader, size, PAPER_CROP_RATIO) == cfg.test_dataloader
    at288 = at_size(cfg.test_dataloader, 288, PAPER_CROP_RATIO)
    assert [t['size'] for t in at288.dataset.pipeline[:2]] == [329, 288]
    assert at288.dataset.pipeline[2:] == cfg.test_dataloader.dataset.pipeline[2:]  # nothing else changes
    assert config_size(cfg.test_dataloader) == size  # a copy: the config itself is unchanged


def test_results_file_per_size():
    assert files_per_size('w/test_results.json', [224, 288]) == ['w/test_results_224.json', 'w/test_results_288.json']
    assert files_per_size('r/{size}/top1.json', [32]) == ['r/32/top1.json']
    assert files_per_size('noext', [32]) == ['noext_32']


def _cfg(pipeline) -> Config:
    cfg = read_config(osp.join(CLS, 'resnet50d_tricks.py'))
    cfg.test_dataloader.dataset.pipeline = pipeline
    return cfg


def test_a_pipeline_it_cannot_rewrite_is_one_error_before_anything_runs(tmp_path):
    resize = dict(type='torchvision/Resize', size=256)
    crop = dict(type='torchvision/CenterCrop', size=224)
    norm = dict(type='torchvision/Normalize', mean=[0, 0, 0], std=[1, 1, 1])
    for pipeline, words in [([resize, norm], 'needs a resize'), ([crop, resize, norm], 'needs a resize'),
                            ([dict(resize, size=(256, 256)), crop], re.escape('size=(256, 256)')),
                            ([dict(resize, max_size=300), crop], 'max_size')]:
        with pytest.raises(ConfigError, match=words):
            apply_test_sizes(_cfg(pipeline), [224], None, str(tmp_path / 'r.json'))
    assert os.listdir(tmp_path) == []
    cfg = _cfg([resize, crop, norm])
    cfg.test_cfg = dict(type='ValLoop')
    with pytest.raises(ConfigError, match='test_cfg.type'):
        apply_test_sizes(cfg, [224], None, str(tmp_path / 'r.json'))


def test_crop_ratio_alone_is_the_configs_own_size(tmp_path):
    cfg = read_config(osp.join(CLS, 'inception_v3_tricks.py'))
    (only,) = apply_test_sizes(cfg, None, 1.0, str(tmp_path / 'test_results.json'))
    assert only == dict(test_size=299, test_resize=299, crop_ratio=1.0, file=str(tmp_path / 'test_results_299.json'))
    assert cfg.test_cfg.type == 'MultiSizeTestLoop' and cfg.test_cfg.sizes == [299]


def _test_cls_main():
    import importlib.util
    spec = importlib.util.spec_from_file_location('_test_cls', osp.join(REPO, 'tools', 'test_cls.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.parametrize('flags', [['--sizes', '0'], ['--sizes', '224,224'], ['--sizes', '224,abc'], ['--sizes', ''],
                                   ['--sizes', '5000'], ['--crop-ratio', '0'], ['--crop-ratio', '1.5'],
                                   ['--crop-ratio', 'nan']])
def test_bad_sizes_or_ratio_are_usage_errors(flags, tmp_path):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'x')
    with pytest.raises(ConfigError, match=flags[0]):
        _test_cls_main()([osp.join(CLS, 'resnet50d_tricks.py'), str(ckpt), '--work-dir', str(tmp_path / 'w'), *flags])
    assert not osp.exists(tmp_path / 'w')


def test_every_results_file_is_checked_before_the_evaluation(tmp_path):
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'not read: the outputs are refused first')
    work = tmp_path / 'w'
    work.mkdir()
    (work / 'test_results_288.json').write_text('{"mine": 1}')  # a file bagtricks did not write
    with pytest.raises(UserInputError, match='test_results_288.json'):
        _test_cls_main()([osp.join(CLS, 'resnet50d_tricks.py'), str(ckpt), '--work-dir', str(work),
                          '--sizes', '224,288'])
    assert sorted(os.listdir(work)) == ['test_results_288.json']
    assert (work / 'test_results_288.json').read_text() == '{"mine": 1}'


# -- a trained checkpoint, evaluated -----------------------------------------------------------------------------
def make_hues_imagenet(root: str, per_class: dict, size: int = 40, classes: int = 10, seed: int = 0) -> str:
    """``root/{train,val}/<class>/*.JPEG``: a disc of the class's hue on a random grey, at a random place and
    scale, with noise (real JPEG files). A tiny network learns it in a few dozen iterations, the shapes of
    cls_helpers not (their colours are random by design)."""
    import colorsys

    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c in range(classes):
            folder = osp.join(root, split, f'n{c:08d}_hue{c}')
            os.makedirs(folder, exist_ok=True)
            colour = tuple(int(255 * v) for v in colorsys.hsv_to_rgb(c / classes, 0.9, 0.9))
            for i in range(n):
                grey = int(rng.integers(60, 196))
                img = Image.new('RGB', (size, size), (grey, grey, grey))
                r = size * rng.uniform(0.2, 0.35)
                cx, cy = rng.uniform(r, size - r, 2)
                ImageDraw.Draw(img).ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
                arr = np.asarray(img).astype(np.int16) + rng.integers(-25, 26, (size, size, 3))
                Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(
                    osp.join(folder, f'{split}_{c}_{i:04d}.JPEG'), quality=90)
    return root


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """configs/cls/resnet50d_cosine_ls.py shrunk to a ResNet-18-D at 1/8 width, trained 3 epochs (30 iterations)
    on 32 px crops of 40 px images (10 classes): about 35 % top-1, chance 10 %."""
    root = tmp_path_factory.mktemp('fixres')
    data = make_hues_imagenet(str(root / 'data'), per_class={'train': 16, 'val': 6})
    config = root / 'tiny.py'
    config.write_text(f"_base_ = {osp.join(CLS, 'resnet50d_cosine_ls.py')!r}\n"
                      "model = dict(num_classes=10, backbone=dict(depth=18, stem_channels=8, base_channels=8))\n"
                      "val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
                      "default_hooks = dict(checkpoint=dict(save_best=None, max_keep_ckpts=1))\n"
                      "randomness = dict(seed=0, deterministic=True)\n")
    opts = [o for o in tiny_data_options(data, size=32, batch=16) if not o.startswith('val_dataloader')]
    run_tool('pretrain', str(config), '--work-dir', str(root / 'work'), '--cfg-options', *opts,
             'train_cfg.max_epochs=3', 'train_dataloader.dataset.pipeline.0.scale=(0.5,1.0)',
             'optim_wrapper.optimizer.lr=1.6',  # x 16/256 (linear scaling) = 0.1
             'param_scheduler.0.end=1', 'param_scheduler.1.begin=1')  # warmup 1 epoch, cosine over 2
    return dict(config=str(config), ckpt=str(root / 'work' / 'epoch_3.pth'), data=data, root=root,
                opts=[o for o in opts if not o.startswith('test_dataloader.dataset.pipeline')])


def test_sizes_write_one_record_per_size_equal_to_a_plain_run_at_that_size(trained):
    root, opts = trained['root'], trained['opts']
    work = str(root / 'sizes')
    proc = run_tool('test_cls', trained['config'], trained['ckpt'], '--work-dir', work, '--sizes', '32,40',
                    '--cfg-options', *opts)
    records = {}
    for size, resize in ((32, 37), (40, 46)):
        path = osp.join(work, f'test_results_{size}.json')
        assert path in proc.stdout
        records[size] = read_results(path, task='cls')  # the one schema, read back by the reading layer
        prov = records[size]['provenance']
        assert (prov['test_size'], prov['test_resize'], prov['crop_ratio']) == (size, resize, 0.875)
        assert prov['num_images'] == 60 and prov['checkpoint'] == trained['ckpt']
    assert not osp.exists(osp.join(work, 'test_results.json'))
    assert len([d for d in os.listdir(work) if d[:1].isdigit()]) == 1  # one run, one log folder

    for size, resize in ((32, 37), (40, 46)):  # the same checkpoint, the size given as a plain --cfg-options run
        plain = str(root / f'plain_{size}')
        run_tool('test_cls', trained['config'], trained['ckpt'], '--work-dir', plain, '--cfg-options', *opts,
                 f'test_dataloader.dataset.pipeline.0.size={resize}', f'test_dataloader.dataset.pipeline.1.size={size}')
        reference = read_results(osp.join(plain, 'test_results.json'), task='cls')
        assert records[size]['metrics'] == reference['metrics']  # the same numbers, exactly
        assert records[size]['per_class'] == reference['per_class']
        assert {k: v for k, v in records[size]['provenance'].items()
                if k not in ('test_size', 'test_resize', 'crop_ratio', 'work_dir')} == \
            {k: v for k, v in reference['provenance'].items() if k != 'work_dir'}
    # the two sizes were evaluated differently (a pipeline left unchanged would give equal tables)
    assert (records[32]['metrics'], records[32]['per_class']) != (records[40]['metrics'], records[40]['per_class'])
