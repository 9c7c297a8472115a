"""--cfg-options keys at the top level: the Runner's arguments (read from its signature) are accepted, typos refused."""
from __future__ import annotations

import pytest
from mmengine.config import Config

from engine.cfg_options import RUNNER_KEYS, apply_cfg_options, check_cfg_options
from user_errors import ConfigError


def _cfg() -> Config:
    return Config(dict(model=dict(type='M', depth=50), train_cfg=dict(max_epochs=3), distill=None))


@pytest.mark.parametrize('key', ['auto_scale_lr', 'find_unused_parameters', 'cfg', 'experiment_name', 'runner_type',
                                 'custom_imports', 'default_scope'])
def test_runner_arguments_are_accepted_at_top_level(key):
    check_cfg_options(_cfg(), {key: True})


def test_keys_come_from_the_runner_signature():
    import inspect

    from mmengine.runner import Runner
    assert set(inspect.signature(Runner.__init__).parameters) - {'self'} <= RUNNER_KEYS


@pytest.mark.parametrize('key, message', [
    ('auto_scale_lrr', r"unknown key 'auto_scale_lrr' in the config"),
    ('find_unused_parameter', r"unknown key 'find_unused_parameter' in the config"),
    ('train_cfg.max_epoch', r"unknown key 'max_epoch' in train_cfg; closest: train_cfg\.max_epochs"),
])
def test_typos_are_refused(key, message):
    with pytest.raises(ConfigError, match=message):
        check_cfg_options(_cfg(), {key: 1})


def test_apply_merges_and_fills_a_none_parent():
    cfg = _cfg()
    apply_cfg_options(cfg, {'train_cfg.max_epochs': 5, 'distill.teacher_config': 'x.py', 'model.new_arg': 1})
    assert cfg.train_cfg.max_epochs == 5 and cfg.distill.teacher_config == 'x.py' and cfg.model.new_arg == 1
    with pytest.raises(ConfigError, match=r"train_cfg\.max_epochs='five': expected an integer"):
        apply_cfg_options(cfg, {'train_cfg.max_epochs': 'five'})
