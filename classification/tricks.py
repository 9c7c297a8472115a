"""The trick table of a resolved config: which trick is on, the lr after scaling, the epochs."""
from __future__ import annotations

from mmengine.config import Config

from .schedules import scaled_lr


def _schedule(cfg: Config) -> tuple[str, str]:
    warmup, decay = 'off', 'constant'
    for s in cfg.param_scheduler:
        per = 'per iteration' if s.get('convert_to_iter_based') or not s.get('by_epoch', True) else 'per epoch'
        if s.type in ('LinearWarmupLR', 'LinearLR'):
            warmup = f"{s.get('end', '?') - s.get('begin', 0)} epochs from 0, {per} ({s.type})"
        elif s.type == 'CosineAnnealingLR':
            decay = f'cosine to {s.get("eta_min", 0)} {per}, eq. (1)'
        elif s.type == 'MultiStepLR':
            decay = f'step x{s.gamma} at epochs {list(s.milestones)}'
        else:
            decay = s.type
    return warmup, decay


def trick_table(cfg: Config, world_size: int) -> list[tuple[str, str]]:
    model, backbone = cfg.model, cfg.model.backbone
    opt = cfg.optim_wrapper.optimizer
    paramwise = cfg.optim_wrapper.get('paramwise_cfg') or {}
    batch = cfg.train_dataloader.batch_size
    auto = cfg.get('auto_scale_lr') or {}
    warmup, decay = _schedule(cfg)
    distill = model.get('distill')
    on = {True: 'on', False: 'off'}
    return [
        ('backbone', f"{backbone.type} depth {backbone.get('depth')} variant {backbone.get('variant')}, "
                     f"{model.num_classes} classes"),
        ('batch', f'{batch} per process x {world_size} processes = {batch * world_size}'),
        ('linear lr scaling', (f"on: lr {opt.lr} x {batch * world_size}/{auto['base_batch_size']} = "
                               f"{scaled_lr(cfg, world_size):g}") if auto.get('enable') else f'off: lr {opt.lr}'),
        ('epochs', str(cfg.train_cfg.max_epochs)),
        ('lr warmup', warmup),
        ('lr decay', decay),
        ('optimizer', f"{opt.type} momentum {opt.get('momentum', 0)} nesterov {opt.get('nesterov', False)} "
                      f"wd {opt.get('weight_decay', 0)}"),
        ('init', str(backbone.get('init', 'torchvision'))),
        ('zero gamma', on[bool(backbone.get('zero_gamma', False))]),
        ('no bias decay', on[paramwise.get('bias_decay_mult') == 0 and paramwise.get('norm_decay_mult') == 0]),
        ('mixed precision', on[cfg.optim_wrapper.type in ('MixedPrecisionOptimWrapper', 'AmpOptimWrapper')]
         + f' ({cfg.optim_wrapper.type})'),
        ('label smoothing', f"eps {model.get('label_smoothing', 0.0)}" if model.get('label_smoothing') else 'off'),
        ('mixup', f"alpha {model.get('mixup_alpha')}" if model.get('mixup_alpha') else 'off'),
        ('distillation', (f"teacher {distill.teacher_config} ({distill.teacher_checkpoint}), "
                          f"T {distill.get('temperature', 20.0)}, hard weight {distill.get('hard_weight', 0.5)}")
         if distill else 'off'),
    ]


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)
