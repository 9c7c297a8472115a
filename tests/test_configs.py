"""Every file under configs/ parses, and every config with a model builds it in its toolbox's scope,
together with its optimizer wrapper and its data pipelines, so a config that cannot be used fails CI
(the Table 7 rows once shipped unparsable because no test loaded them).

Left out, by design: distillation teachers and pretrained files (``init_cfg``/``pretrained``), which
name checkpoints the pretraining runs write; the paper-size smoke tests (test_paper_scale*.py) run
real rows end to end with such files.
"""
from __future__ import annotations

import copy
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))


def _registries(scope: str):
    """(MODELS, TRANSFORMS) of the toolbox whose scope a config builds in."""
    if scope == 'mmdet':
        from mmdet.registry import MODELS, TRANSFORMS
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmseg':
        from mmseg.registry import MODELS, TRANSFORMS
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'bagtricks':
        from classification.registry import MODELS, TRANSFORMS
    else:
        raise AssertionError(f'unexpected default_scope {scope!r}')
    return MODELS, TRANSFORMS


def _without_files(model_cfg: dict) -> dict:
    """The model config without what names a checkpoint: teachers, init_cfg, pretrained."""
    model_cfg = copy.deepcopy(model_cfg)
    model_cfg.pop('distill', None)
    if 'pretrained' in model_cfg:
        model_cfg['pretrained'] = None
    for part in ('backbone',):
        if isinstance(model_cfg.get(part), dict):
            model_cfg[part].pop('init_cfg', None)
            model_cfg[part].pop('pretrained', None)
    return model_cfg


def _pipelines(cfg: Config) -> list[list[dict]]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get('pipeline'), (list, tuple)):
                found.append(list(node['pipeline']))
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        walk(cfg.get(key))
    return found


def test_configs_found():
    # the three tasks' paper configs are all here, so a glob mistake cannot make the test vacuous
    names = {osp.basename(p) for p in CONFIGS}
    assert {'resnet50d_tricks.py', 'faster-rcnn_r50d-cosine_fpn_voc0712.py', 'fcn_r50d-cosine_ade20k.py'} <= names
    assert len(CONFIGS) >= 48


@pytest.mark.parametrize('path', CONFIGS)
def test_config_parses_and_builds(path):
    cfg = Config.fromfile(osp.join(REPO, path))  # a syntax or inheritance error fails here
    if 'model' not in cfg:
        assert osp.basename(osp.dirname(path)) == '_base_', f'{path}: a config without a model outside _base_'
        return
    imports = (cfg.get('custom_imports') or {}).get('imports', [])
    import_modules_from_strings(imports, allow_failed_imports=False)
    scope = cfg.get('default_scope', 'bagtricks')
    MODELS, TRANSFORMS = _registries(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(_without_files(cfg.model))
        n_params = sum(p.numel() for p in model.parameters())
        assert n_params > 0
        if 'optim_wrapper' in cfg:
            import engine  # noqa: F401  (MixedPrecisionOptimWrapper)
            optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
            optimized = {id(p) for g in optim.optimizer.param_groups for p in g['params']}
            assert all(id(p) in optimized for p in model.parameters() if p.requires_grad)
        for pipeline in _pipelines(cfg):
            if scope == 'bagtricks':
                from classification.transforms import build_pipeline
                build_pipeline(pipeline)
            else:
                for step in pipeline:
                    TRANSFORMS.build(copy.deepcopy(step))
    if scope == 'bagtricks' and 'optim_wrapper' in cfg:
        from classification.trick_report import format_table, trick_table
        table = dict(trick_table(cfg, world_size=8))
        assert table['backbone'].startswith(cfg.model.backbone.type)
        assert format_table(list(table.items()))
