"""engine.valid_values, the one table of valid config values.

In process, with Hypothesis: for every row of the table, generated bad values (out of range, wrong type,
NaN, inf, huge) raise one ConfigError naming the key and generated good values pass; the relations
(warmup vs run, top-k vs classes, launcher vs environment, val batches vs pipeline) hold for generated
inputs; every shipped config passes. Example counts: the 'ci' profile (tests/conftest.py); a long run:
``pytest tests/test_valid_values.py --hypothesis-profile long``.

As a user runs the tool (a few subprocesses): a bad ``--cfg-options`` value or launcher is exit 1, one
``error:`` line naming the key, no traceback, nothing in the work dir.
"""
from __future__ import annotations

import fnmatch
import glob
import math
import os
import os.path as osp
import re
import subprocess
import sys
from unittest import mock

import pytest
from hypothesis import given, strategies as st
from mmengine.config import Config

from cls_helpers import make_shapes_imagenet, tiny_data_options
from scale_helpers import REPO, child_env, cls_config

from engine.preflight import check_config
from engine.valid_values import (LAUNCHER_ENV, RELATIONS, TABLE, Boolean, OneOf, Range, Row, check_values,
                                 fixed_size, launcher_has_its_environment, violations)
from user_errors import ConfigError

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))
DIST_ENV = {n for names, _ in LAUNCHER_ENV.values() for n in names}

# -- generated values per check --------------------------------------------------------------------
WRONG_TYPES = st.one_of(st.text(max_size=8), st.booleans(), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def good_values(check) -> st.SearchStrategy:
    if isinstance(check, Boolean):
        return st.booleans()
    if isinstance(check, OneOf):
        return st.sampled_from(check.choices)
    assert isinstance(check, Range), check
    extra = [st.sampled_from(check.also)] if check.also else []
    extra += [st.none()] if check.none_ok else []
    if check.integer:
        lo = None if check.lo is None else int(check.lo) + (1 if check.lo_open else 0)
        hi = None if check.hi is None else int(check.hi) - (1 if check.hi_open else 0)
        return st.one_of(st.integers(min_value=lo, max_value=hi), *extra)
    floats = st.floats(min_value=check.lo, max_value=check.hi, exclude_min=check.lo_open and check.lo is not None,
                       exclude_max=check.hi_open and check.hi is not None, allow_nan=False, allow_infinity=False)
    ints = st.integers(min_value=None if check.lo is None else math.ceil(check.lo),
                       max_value=None if check.hi is None else math.floor(check.hi))
    ints = ints.filter(check)  # an open bound that is an integer
    return st.one_of(floats, ints, *extra)


def bad_values(check) -> st.SearchStrategy:
    none = [] if getattr(check, 'none_ok', False) else [st.none()]
    if isinstance(check, Boolean):
        return st.one_of(st.integers(), st.floats(), st.text(max_size=8), *none)  # 0 and 1 too
    if isinstance(check, OneOf):
        return st.one_of(st.integers().filter(lambda v: v not in check.choices),
                         st.sampled_from([float(c) for c in check.choices]),  # 50.0 is not the depth 50
                         NON_FINITE, WRONG_TYPES, *none)
    assert isinstance(check, Range), check
    out = [NON_FINITE, WRONG_TYPES, *none]
    if check.lo is not None:  # below the range, down to huge negative numbers
        out.append(st.floats(max_value=check.lo, exclude_max=not check.lo_open, allow_nan=False,
                             allow_infinity=False))
        out.append(st.integers(max_value=math.ceil(check.lo) - (0 if check.lo_open else 1)))
    if check.hi is not None:  # above it, up to huge numbers
        out.append(st.floats(min_value=check.hi, exclude_min=not check.hi_open, allow_nan=False,
                             allow_infinity=False))
        out.append(st.integers(min_value=math.floor(check.hi) + (0 if check.hi_open else 1)))
    if check.integer:  # a number that is not an integer, even an integral float
        out.append(st.floats(allow_nan=False, allow_infinity=False))
    return st.one_of(*out).filter(lambda v: not check(v))


# -- a minimal config that holds one row's key -------------------------------------------------------
WILDCARD_SAMPLES = {'*_dataloader': ('train_dataloader', 'val_dataloader', 'test_dataloader'),
                    'default_hooks.*': ('logger', 'checkpoint'), 'param_scheduler.*': ('0', '1'),
                    'custom_hooks.*': ('0', '1')}


def concrete_keys(row: Row) -> st.SearchStrategy:
    parts = row.key.split('.')
    choices = []
    for i, part in enumerate(parts):
        if '*' in part:
            prefix = '.'.join(parts[:i + 1])
            choices.append(st.sampled_from(WILDCARD_SAMPLES.get(prefix) or WILDCARD_SAMPLES[part]))
        else:
            choices.append(st.just(part))
    return st.tuples(*choices).map('.'.join)


def config_with(row: Row, key: str, value, component: str | None = None) -> Config:
    root: dict = {}
    if row.task == 'cls':
        root['model'] = {'type': 'BagClassifier'}
    node, parts = root, key.split('.')
    for part, nxt in zip(parts[:-1], parts[1:]):
        if isinstance(node, list):
            while len(node) <= int(part):
                node.append({'type': 'MultiStepLR', 'by_epoch': True, 'milestones': [1]})
            node = node[int(part)]
        else:
            node = node.setdefault(part, [] if nxt.isdigit() else {})
    if component:
        node['type'] = component
    node[parts[-1]] = value
    return Config(root)


def row_id(row: Row) -> str:
    return row.key + (f'[{row.component[0]}]' if row.component else '')


@pytest.mark.parametrize('row', TABLE, ids=row_id)
@given(data=st.data())
def test_bad_value_is_one_error_naming_the_key(row, data):
    key = data.draw(concrete_keys(row), label='key')
    value = data.draw(bad_values(row.check), label='value')
    component = data.draw(st.sampled_from([*row.component, *(f'bagtricks.{c}' for c in row.component)]),
                          label='type') if row.component else None
    with pytest.raises(ConfigError) as e:
        check_values(config_with(row, key, value, component))
    message = str(e.value)
    assert message.startswith(f'{key} = ') and f': expected {row.expected}' in message, message
    assert '\n' not in message


@pytest.mark.parametrize('row', TABLE, ids=row_id)
@given(data=st.data())
def test_good_value_passes(row, data):
    key = data.draw(concrete_keys(row), label='key')
    value = data.draw(good_values(row.check), label='value')
    component = data.draw(st.sampled_from(row.component), label='type') if row.component else None
    check_values(config_with(row, key, value, component))


@given(value=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=4)))
def test_component_rows_apply_to_their_component_only(value):
    # model.backbone.depth of another toolbox's backbone is that toolbox's business; of ours, ours
    cfg = Config(dict(model=dict(backbone=dict(type='mmdet.ResNeXt', depth=value, base_channels=value))))
    assert not [v for v in violations(cfg) if v.key.startswith('model.backbone')]
    with pytest.raises(ConfigError, match=r'^model\.backbone\.depth = '):
        check_values(Config(dict(model=dict(backbone=dict(type='bagtricks.BagResNet', depth=value)))))


def test_task_rows_apply_to_classification_only():
    # a detector's label smoothing is its own head's argument; the BagClassifier's is checked
    assert not violations(Config(dict(model=dict(type='FasterRCNN', label_smoothing=3, num_classes=1))))
    with pytest.raises(ConfigError, match=r'^model\.label_smoothing = 3: expected a number in \[0, 1\)$'):
        check_values(Config(dict(model=dict(type='BagClassifier', label_smoothing=3))))


def test_messages_name_key_value_and_range():
    cases = {
        'optim_wrapper.optimizer.lr': (-0.1, 'optim_wrapper.optimizer.lr = -0.1: expected a finite number > 0'),
        'randomness.seed': (2 ** 32, 'randomness.seed = 4294967296: expected None or an integer in 0..4294967295 '
                                     "(numpy's seed range)"),
        'train_dataloader.batch_size': (True, 'train_dataloader.batch_size = True: expected an integer >= 1'),
        'optim_wrapper.optimizer.momentum': (1, 'optim_wrapper.optimizer.momentum = 1: expected a number in [0, 1)'),
        'optim_wrapper.optimizer.weight_decay': (math.nan, 'optim_wrapper.optimizer.weight_decay = nan: expected '
                                                           'a finite number >= 0'),
    }
    for key, (value, text) in cases.items():
        row = next(r for r in TABLE if fnmatch.fnmatchcase(key, r.key))
        with pytest.raises(ConfigError) as e:
            check_values(config_with(row, key, value))
        assert str(e.value) == text


def test_several_bad_values_are_still_one_line():
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(lr=0, weight_decay=-1, momentum=2)),
                      train_cfg=dict(max_epochs=0)))
    with pytest.raises(ConfigError) as e:
        check_values(cfg)
    assert str(e.value) == ('optim_wrapper.optimizer.lr = 0: expected a finite number > 0 (and 3 more: '
                            'optim_wrapper.optimizer.weight_decay, optim_wrapper.optimizer.momentum, '
                            'train_cfg.max_epochs)')


# -- relations --------------------------------------------------------------------------------------
WARMUP_TYPES = st.sampled_from([dict(type='LinearWarmupLR'), dict(type='LinearLR', start_factor=0.01),
                                dict(type='LinearLR'), dict(type='ConstantLR', factor=0.5)])


LOOPS = st.sampled_from(['by_epoch', 'EpochBasedTrainLoop', 'IterBasedTrainLoop'])


@given(length=st.integers(1, 300), end=st.one_of(st.integers(1, 400), st.floats(0.01, 400)), warmup=WARMUP_TYPES,
       loop=LOOPS)
def test_warmup_ends_within_the_run(length, end, warmup, loop):
    by_epoch = loop != 'IterBasedTrainLoop'
    key = 'max_epochs' if by_epoch else 'max_iters'
    train_cfg = {'by_epoch': True} if loop == 'by_epoch' else {'type': loop}
    train_cfg.update({key: length, 'val_interval': 1})
    cfg = Config(dict(train_cfg=train_cfg, param_scheduler=[
        dict(warmup, by_epoch=by_epoch, begin=0, end=end),
        dict(type='CosineAnnealingLR', by_epoch=by_epoch, begin=end)]))
    if end > length:
        with pytest.raises(ConfigError, match=rf'^param_scheduler\.0\.end = {re.escape(repr(end))}: expected a '
                                              rf'warmup that ends within the run \(train_cfg\.{key} = {length} '):
            check_values(cfg)
    else:
        check_values(cfg)


@given(length=st.integers(1, 50), end=st.integers(51, 10_000))
def test_warmup_in_other_units_or_a_decay_is_not_compared(length, end):
    # iterations of warmup in an epoch loop need the epoch length (data); a LinearLR that falls is a decay
    loop = dict(type='EpochBasedTrainLoop', max_epochs=length)
    check_values(Config(dict(train_cfg=loop, param_scheduler=[dict(type='LinearLR', by_epoch=False, end=end)])))
    check_values(Config(dict(train_cfg=loop, param_scheduler=[
        dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=True, end=end)])))


def cls_root(num_classes, topk, split='val', loader=True):
    root = dict(model=dict(type='BagClassifier', num_classes=num_classes))
    root[f'{split}_evaluator'] = dict(type='Accuracy', topk=topk)
    root[f'{split}_dataloader'] = dict(batch_size=1, dataset=dict(pipeline=[])) if loader else None
    return root


@given(n=st.integers(2, 2000), topk=st.one_of(st.integers(1, 3000), st.lists(st.integers(1, 3000), min_size=1,
                                                                               max_size=3).map(tuple)),
       split=st.sampled_from(['val', 'test']))
def test_topk_no_larger_than_the_classes(n, topk, split):
    cfg = Config(cls_root(n, topk, split))
    if max(topk if isinstance(topk, tuple) else (topk,)) > n:
        with pytest.raises(ConfigError, match=rf'^{split}_evaluator\.topk = .*: expected values in 1\.\.{n} '
                                              rf'\(model\.num_classes = {n}\)'):
            check_values(cfg)
    else:
        check_values(cfg)


@given(topk=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3), st.lists(st.booleans(), min_size=1)))
def test_topk_values_are_positive_integers(topk):
    with pytest.raises(ConfigError, match=r'^val_evaluator\.topk = .*: expected positive integers'):
        check_values(Config(cls_root(10, topk)))


def test_topk_of_an_unused_evaluator_and_the_default_topk():
    check_values(Config(cls_root(2, (1, 5), loader=False)))  # no val loop: its evaluator never runs
    root = cls_root(3, (1, 5))
    del root['val_evaluator']['topk']  # Accuracy's default is (1, 5)
    with pytest.raises(ConfigError, match=r'^val_evaluator\.topk = \(1, 5\): expected values in 1\.\.3'):
        check_values(Config(root))


ENV_VALUES = st.one_of(st.none(), st.sampled_from(['', ' ', 'x', 'node-1', '-1', '1.5']),
                       st.integers(0, 65535).map(str))
TEXT_ENV = {'MASTER_ADDR', 'SLURM_NODELIST'}  # a host name or list; every other variable is a number


@given(launcher=st.sampled_from(sorted(LAUNCHER_ENV)), data=st.data())
def test_launcher_needs_its_environment(launcher, data):
    names = LAUNCHER_ENV[launcher][0]
    environ = {'UNRELATED': 'x'}
    for name in names:
        value = data.draw(ENV_VALUES, label=name)
        if value is not None:
            environ[name] = value
    complete = all(environ.get(n, '').strip() and (n in TEXT_ENV or environ[n].strip().isdigit()) for n in names)
    found = list(launcher_has_its_environment({'launcher': launcher}, environ))
    if complete:
        assert not found
    else:
        assert len(found) == 1 and str(found[0]).startswith(f"launcher = '{launcher}': expected the environment")
    with mock.patch.dict(os.environ, environ, clear=True):
        assert bool(violations(Config(dict(launcher=launcher)))) == bool(found)


def test_launcher_message_names_torchrun_and_dist_train():
    with mock.patch.dict(os.environ, {'LOCAL_RANK': '0'}, clear=True):  # build_config sets LOCAL_RANK itself
        with pytest.raises(ConfigError) as e:
            check_values(Config(dict(launcher='pytorch')))
    assert str(e.value).startswith("launcher = 'pytorch': expected the environment its process manager sets "
                                   '(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK; missing RANK, '
                                   'WORLD_SIZE, MASTER_ADDR, MASTER_PORT)')
    assert 'tools/dist_train.sh' in str(e.value) and 'torchrun' in str(e.value)
    with mock.patch.dict(os.environ, {}, clear=True):
        check_values(Config(dict(launcher='none')))


RESIZE_SHORT = dict(type='torchvision/Resize', size=32, antialias=True)
TAIL = [dict(type='torchvision/ToDtype', dtype='float32', scale=False), dict(type='torchvision/Normalize', mean=[0],
                                                                             std=[1])]
PIPELINES = {  # pipeline -> every output image has one size
    'resize shorter side': ([RESIZE_SHORT, *TAIL], False),
    'resize + centre crop': ([RESIZE_SHORT, dict(type='torchvision/CenterCrop', size=28), *TAIL], True),
    'resize to (h, w)': ([dict(type='torchvision/Resize', size=(32, 40)), *TAIL], True),
    'crop then resize shorter side': ([dict(type='torchvision/CenterCrop', size=64), RESIZE_SHORT], False),
    'random resized crop': ([dict(type='torchvision/RandomResizedCrop', size=32), *TAIL], True),
    'mmcv resize keep ratio': ([dict(type='Resize', scale=(32, 32), keep_ratio=True)], False),
    'mmcv resize to scale': ([dict(type='Resize', scale=(32, 32))], True),
    'nothing': (TAIL, False),
}


@given(name=st.sampled_from(sorted(PIPELINES)), batch=st.integers(1, 1024), split=st.sampled_from(['val', 'test']),
       task=st.sampled_from(['BagClassifier', 'FasterRCNN', 'EncoderDecoder']))
def test_val_batches_need_one_image_size(name, batch, split, task):
    pipeline, fixed = PIPELINES[name]
    assert fixed_size(pipeline)[0] is fixed
    cfg = Config({'model': dict(type=task, num_classes=10),
                  f'{split}_dataloader': dict(batch_size=batch, dataset=dict(pipeline=pipeline))})
    if batch > 1 and not fixed and task == 'BagClassifier':  # mmdet and mmseg pad in their preprocessors
        with pytest.raises(ConfigError, match=rf'^{split}_dataloader\.batch_size = {batch}: expected 1, or a '
                                              r'pipeline whose images all have one size'):
            check_values(cfg)
    else:
        check_values(cfg)


# -- the table itself -------------------------------------------------------------------------------
def shipped(path: str) -> Config:
    cfg = Config.fromfile(path)
    cfg.launcher = 'none'  # as build_config sets it without --launcher
    return cfg


@pytest.fixture(scope='module')
def shipped_configs() -> dict:
    return {osp.relpath(p, REPO): shipped(p) for p in CONFIGS}


def test_every_shipped_config_passes_the_table(shipped_configs):
    assert len(shipped_configs) >= 48
    bad = {path: [str(v) for v in violations(cfg)] for path, cfg in shipped_configs.items()}
    assert not {p: v for p, v in bad.items() if v}


# rows no shipped config sets (each is a constructor argument whose default the configs keep)
UNSET_IN_CONFIGS = {'train_cfg.val_begin', 'model.backbone.in_channels', 'model.backbone.drop_path_rate'}


def test_every_row_names_a_key_the_configs_use(shipped_configs):
    # a pattern with a typo would check nothing: each row matches a key of some shipped config
    from engine.valid_values import _matches, _type_name
    used = set()
    for cfg in shipped_configs.values():
        root = {k: cfg[k] for k in cfg.keys()}
        for row in TABLE:
            for _, _, holder in _matches(root, row.key):
                if not row.component or _type_name(holder) in row.component:
                    used.add(row.key)
    assert {r.key for r in TABLE} - used <= UNSET_IN_CONFIGS


def test_distillation_rows_match_the_kd_configs(shipped_configs):
    cfg = shipped_configs['configs/cls/resnet50d_cosine_ls_kd.py']
    assert cfg.model.distill.temperature == 20.0
    cfg.model.distill.temperature = 0
    with pytest.raises(ConfigError, match=r'^model\.distill\.temperature = 0: expected a finite number > 0$'):
        check_values(cfg)


def test_check_config_runs_the_table():
    with pytest.raises(ConfigError, match=r'^train_cfg\.max_epochs = 0: expected an integer >= 1$'):
        check_config(Config(dict(train_cfg=dict(max_epochs=0), work_dir='/nonexistent/never-created')))
    assert not osp.exists('/nonexistent/never-created')
    assert len(RELATIONS) == 4


# -- as a user runs the tool ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def cls_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('valid_values')
    make_shapes_imagenet(str(root / 'data'), num_classes=3, per_class={'train': 2, 'val': 1}, size=36)
    return root


def _pretrain(args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', 'pretrain.py'), *args], cwd=REPO,
                          env=env or child_env(), capture_output=True, text=True, timeout=300)


E2E = {  # option(s) -> the start of the error line
    'negative lr': (['optim_wrapper.optimizer.lr=-0.1'],
                    'error: optim_wrapper.optimizer.lr = -0.1: expected a finite number > 0'),
    'seed beyond numpy': (['randomness.seed=4294967296'], 'error: randomness.seed = 4294967296: expected None or '
                                                          'an integer in 0..4294967295'),
    'nan weight decay': (['optim_wrapper.optimizer.weight_decay=nan'],
                         'error: optim_wrapper.optimizer.weight_decay = nan: expected a finite number >= 0'),
    'zero width': (['model.backbone.base_channels=0'], 'error: model.backbone.base_channels = 0: expected an '
                                                       'integer >= 1'),
}


def _assert_one_error(proc, start: str, work) -> None:
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and 'Traceback' not in proc.stdout
    assert [line for line in err if line.startswith('error:')] == [err[-1]] and err[-1].startswith(start), err
    assert not osp.exists(work) or not os.listdir(work)


@pytest.mark.parametrize('case', sorted(E2E))
def test_pretrain_refuses_a_bad_value_before_any_work(case, cls_data, tmp_path):
    options, start = E2E[case]
    config = cls_config(str(tmp_path / 'cls.py'), str(cls_data / 'data'), num_classes=3, batch=2, epochs=1)
    work = tmp_path / 'work'
    proc = _pretrain([config, '--work-dir', str(work), '--cfg-options', *options])
    _assert_one_error(proc, start, work)


def test_pretrain_top5_of_two_classes_stops_before_training(cls_data, tmp_path):
    # the reported case: a 2-class folder with the shipped config's top-5 metric (it crashed after an epoch)
    work = tmp_path / 'work'
    config = osp.join(REPO, 'configs', 'cls', 'resnet50d_cosine.py')
    proc = _pretrain([config, '--work-dir', str(work), '--cfg-options',
                      *tiny_data_options(str(cls_data / 'data'), size=32, batch=2), 'model.num_classes=2'])
    _assert_one_error(proc, 'error: val_evaluator.topk = (1, 5): expected values in 1..2 (model.num_classes = 2)',
                      work)


def test_pretrain_launcher_pytorch_without_torchrun(cls_data, tmp_path):
    config = cls_config(str(tmp_path / 'cls.py'), str(cls_data / 'data'), num_classes=3, batch=2, epochs=1)
    work = tmp_path / 'work'
    env = {k: v for k, v in child_env().items() if k not in DIST_ENV}
    proc = _pretrain([config, '--work-dir', str(work), '--launcher', 'pytorch'], env=env)
    _assert_one_error(proc, "error: launcher = 'pytorch': expected the environment its process manager sets", work)
    assert 'tools/dist_train.sh' in proc.stderr
