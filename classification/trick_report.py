"""The trick table of a resolved config: which trick is on, the lr after scaling (from the effective batch:
processes x batch x gradient accumulation), the epochs, the EMA of weights."""
from __future__ import annotations

import inspect

from mmengine.config import Config

from backbones.registry import MODELS
from device_caps import amp_choice, describe

from .schedules import accumulation, effective_batch, scaled_lr
from .transforms import resolve_where

ARCH_KEYS = ('depth', 'variant', 'width', 'act')  # the backbone arguments that name the network


def _backbone(backbone) -> str:
    args = ' '.join(f'{k} {backbone[k]}' for k in ARCH_KEYS if k in backbone)
    if backbone.type.split('.')[-1] == 'BagResNet':  # unset ResNet arguments print their absence
        args = f"depth {backbone.get('depth')} variant {backbone.get('variant')}"
    return f'{backbone.type} {args}'.rstrip()


def _zero_gamma(backbone) -> str:
    cls = MODELS.get(backbone.type)
    if cls is not None and not getattr(cls, 'zero_gamma_applies', True):
        # no residual block: nothing to zero (an explicit zero_gamma=True is an error when it is built)
        return 'n/a for this backbone' + (' (zero_gamma=True is set: building it is an error)'
                                          if backbone.get('zero_gamma') else '')
    return 'on' if backbone.get('zero_gamma', False) else 'off'


def _init(backbone) -> str:
    if 'init' in backbone:
        return str(backbone.init)
    cls = MODELS.get(backbone.type)
    default = inspect.signature(cls).parameters.get('init') if cls is not None else None
    return str(default.default) if default is not None else 'torchvision'


def _sizes(pipeline, *types) -> list:
    return [t.get('size') for t in pipeline or [] for want in types if t.get('type') == want]


def _input(cfg: Config) -> str:
    """The train crop and the val resize / centre crop (299 and 342/299 for Inception-V3)."""
    parts = []
    train = cfg.get('train_dataloader') or {}
    crop = _sizes((train.get('dataset') or {}).get('pipeline'), 'torchvision/RandomResizedCrop')
    parts.append(f'train crop {crop[0]}' if crop else 'train crop none')
    val = cfg.get('val_dataloader') or {}
    pipeline = (val.get('dataset') or {}).get('pipeline')
    resize, centre = _sizes(pipeline, 'torchvision/Resize'), _sizes(pipeline, 'torchvision/CenterCrop')
    if pipeline:
        parts.append('val' + (f' resize {resize[0]}' if resize else '') + (f' centre crop {centre[0]}' if centre else ''))
    return ', '.join(parts)


def _mixed_precision(optim_wrapper) -> str:
    """What the optimizer wrapper trains in on this machine, and why (device_caps' rule, as engine.amp)."""
    kind = optim_wrapper.get('type', 'OptimWrapper')
    if kind == 'MixedPrecisionOptimWrapper':
        dtype, reason = amp_choice(optim_wrapper.get('amp_dtype', 'auto'))
        return f"{'off' if dtype == 'fp32' else 'on'}: {describe(dtype)} ({reason}; {kind})"
    if kind == 'AmpOptimWrapper':
        return f"on: {optim_wrapper.get('dtype') or 'float16'} autocast + loss scaling ({kind})"
    return f'off ({kind})'


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


EMA_HOOKS = ('EMAHook', 'BagEMAHook')


def _batch(cfg: Config, world_size: int) -> str:
    batch, n = cfg.train_dataloader.batch_size, accumulation(cfg)
    if n == 1:
        return f'{batch} per process x {world_size} processes = {batch * world_size}'
    return (f'{batch} per process x {world_size} processes x {n} accumulated iterations = '
            f'{effective_batch(cfg, world_size)} per optimizer step')


def _accumulation(cfg: Config, world_size: int) -> str:
    n = accumulation(cfg)
    if n == 1:
        return 'off (an optimizer step per iteration)'
    batch = cfg.train_dataloader.batch_size
    return (f'on: {n} iterations per optimizer step (optim_wrapper.accumulative_counts), effective batch '
            f'{effective_batch(cfg, world_size)}; BatchNorm statistics see the per-process batch of {batch}, '
            'not the effective one')


def _ema(cfg: Config) -> str:
    """The EMA line: the averaging rule per optimizer step and what happens to the BatchNorm statistics."""
    hooks = [h for h in cfg.get('custom_hooks') or [] if str(h.get('type', '')).split('.')[-1] in EMA_HOOKS]
    if not hooks:
        return 'off'
    hook = hooks[0]
    kind = hook.get('ema_type', 'ExponentialMovingAverage')
    m = hook.get('momentum', 0.0002)  # mmengine's default
    if kind == 'MomentumAnnealingEMA':
        gamma = hook.get('gamma', 100)
        rule = f'momentum max({m:g}, {gamma:g}/({gamma:g}+t)) at optimizer step t'
    elif kind == 'ExponentialMovingAverage':
        rule = f'momentum {m:g} per optimizer step'
    else:
        rule = f'momentum {m:g}'
    if hook.get('interval', 1) != 1:
        rule += f", every {hook['interval']} steps"
    bn = ('BN statistics averaged with the weights (update_buffers)' if hook.get('update_buffers', False) else
          "BN statistics copied from the raw model (update_buffers=False)")
    return f'on: {kind}, {rule}; {bn}; validation and checkpoints\' state_dict use the EMA weights'


def trick_table(cfg: Config, world_size: int) -> list[tuple[str, str]]:
    model, backbone = cfg.model, cfg.model.backbone
    opt = cfg.optim_wrapper.optimizer
    paramwise = cfg.optim_wrapper.get('paramwise_cfg') or {}
    auto = cfg.get('auto_scale_lr') or {}
    warmup, decay = _schedule(cfg)
    distill = model.get('distill')
    on = {True: 'on', False: 'off'}
    return [
        ('backbone', f'{_backbone(backbone)}, {model.num_classes} classes'),
        ('input', _input(cfg)),
        ('photometric', photometric_summary(cfg)),
        ('batch', _batch(cfg, world_size)),
        ('gradient accumulation', _accumulation(cfg, world_size)),
        ('linear lr scaling', (f"on: lr {opt.lr} x {effective_batch(cfg, world_size)}/{auto['base_batch_size']} = "
                               f"{scaled_lr(cfg, world_size):g}") if auto.get('enable') else f'off: lr {opt.lr}'),
        ('epochs', str(cfg.train_cfg.max_epochs)),
        ('lr warmup', warmup),
        ('lr decay', decay),
        ('optimizer', f"{opt.type} momentum {opt.get('momentum', 0)} nesterov {opt.get('nesterov', False)} "
                      f"wd {opt.get('weight_decay', 0)}" + (' fused' if opt.get('fused') else '')),
        ('init', _init(backbone)),
        ('zero gamma', _zero_gamma(backbone)),
        ('no bias decay', on[paramwise.get('bias_decay_mult') == 0 and paramwise.get('norm_decay_mult') == 0]),
        ('mixed precision', _mixed_precision(cfg.optim_wrapper)),
        ('channels-last', on[bool(backbone.get('channels_last', False))] + ' (memory format of the convolutions)'),
        ('classifier dropout', f"p {model.get('dropout')}" if model.get('dropout') else 'off'),
        ('label smoothing', f"eps {model.get('label_smoothing', 0.0)}" if model.get('label_smoothing') else 'off'),
        ('mixup', f"alpha {model.get('mixup_alpha')}" if model.get('mixup_alpha') else 'off'),
        ('distillation', (f"teacher {distill.teacher_config} ({distill.teacher_checkpoint}), "
                          f"T {distill.get('temperature', 20.0)}, hard weight {distill.get('hard_weight', 0.5)}")
         if distill else 'off'),
        ('EMA', _ema(cfg)),
    ]


def format_table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return '\n'.join(f'{k:<{width}}  {v}' for k, v in rows)


def photometric_summary(cfg) -> str:
    """The trick-table row: where the train pipeline's colour jitter / lighting / normalisation run."""
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline')
    steps = [dict(s) for s in pipeline or []]
    for s in steps:
        if s.get('type') == 'Photometric':
            where = s.get('where', 'auto')
            resolved = resolve_where(where)
            place = ('device: batched in the data preprocessor, uint8 batches from the workers'
                     if resolved == 'device' else 'workers: per image in the loader workers')
            if where != 'auto':
                return place
            from mmengine.device import get_device
            return f'{place} (auto, here {get_device()})'
    if any(s.get('type') in ('torchvision/ColorJitter', 'PCALighting', 'torchvision/Normalize') for s in steps):
        return 'workers: per image (ColorJitter/PCALighting/Normalize steps)'
    return 'none'
