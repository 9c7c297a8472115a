"""Mixed precision chosen by capability (device_caps.amp_choice, engine.amp.MixedPrecisionOptimWrapper), and the
paper's fp16 path (autocast + dynamic loss scaling, mmengine's AmpOptimWrapper mechanics) run on the CPU: the
scaling, a skipped step on overflow, the scaler's state in the checkpoint, SIGKILL then --resume."""
import logging
import os.path as osp
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

import classification  # noqa: F401  (registers the classifier for the trick table)
import device_caps
import engine  # noqa: F401  (registers MixedPrecisionOptimWrapper)
from safe_read import load_training_state
from classification.trick_report import trick_table
from cls_helpers import make_shapes_imagenet
from engine.amp import MixedPrecisionOptimWrapper
from scale_helpers import REPO, checkpoint_files, cls_config, run_tool, state_dict
from user_errors import ConfigError

XEON = ('Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz',
        frozenset('fpu sse2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni'.split()))
ZEN4 = ('AMD EPYC 9354 32-Core Processor', frozenset('sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni'.split()))
SAPPHIRE = ('Intel(R) Xeon(R) Platinum 8480+', frozenset('avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile'.split()))


@contextmanager
def logged(name: str):
    """The records a new current MMLogger (what the wrapper and print_log(logger='current') use) receives."""
    logger = MMLogger.get_instance(name)
    records, handler = [], logging.Handler(logging.INFO)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def _cpuinfo_text(model, flags):
    return ''.join(f'processor\t: {i}\nmodel name\t: {model}\nflags\t\t: {" ".join(sorted(flags))}\n\n'
                   for i in range(2))


# ---------------------------------------------------------------- the choice
def test_auto_on_cpu_is_bf16_only_with_bf16_instructions(tmp_path):
    for (model, flags), want in ((XEON, 'fp32'), (ZEN4, 'bf16'), (SAPPHIRE, 'bf16')):
        path = tmp_path / f'{want}_{len(flags)}'
        path.write_text(_cpuinfo_text(model, flags))
        info = device_caps.read_cpuinfo(str(path))
        assert info == (model, flags)
        dtype, reason = device_caps.amp_choice('auto', 'cpu', info)
        assert dtype == want, reason
        assert model in reason and reason.startswith('amp_dtype=auto')
    assert 'no avx512_bf16/amx_bf16 flag' in device_caps.amp_choice('auto', 'cpu', XEON)[1]
    assert 'has avx512_bf16' in device_caps.amp_choice('auto', 'cpu', ZEN4)[1]
    # 64-bit Arm lists its features under "Features"
    arm = device_caps.parse_cpuinfo('processor\t: 0\nFeatures\t: fp asimd fphp asimdhp bf16 i8mm\n')
    assert device_caps.amp_choice('auto', 'cpu', arm)[0] == 'bf16' and device_caps.native('fp16', 'cpu', arm)[0]
    assert device_caps.read_cpuinfo(str(tmp_path / 'absent'))[1] == frozenset()  # no /proc: no flags, fp32


def test_forced_dtypes_and_cuda(monkeypatch):
    dtype, reason = device_caps.amp_choice('bf16', 'cpu', XEON)  # allowed, but said to be emulated
    assert dtype == 'bf16' and 'emulated' in reason and 'slower than fp32' in reason
    assert device_caps.amp_choice('fp16', 'cpu', SAPPHIRE) == ('fp16', f'amp_dtype=fp16 (forced); CPU {SAPPHIRE[0]} '
                                                                       'has avx512_fp16: native fp16')
    assert device_caps.amp_choice('fp32', 'cpu', XEON)[0] == 'fp32'
    with pytest.raises(ConfigError, match="amp_dtype 'float16'"):
        device_caps.amp_choice('float16', 'cpu', XEON)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a: 'NVIDIA V100')
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda *a: (7, 0))
    assert device_caps.amp_choice('auto', 'cuda')[0] == 'fp16'  # the paper's setting on every GPU
    assert device_caps.native('fp16', 'cuda')[0] and not device_caps.native('bf16', 'cuda')[0]


def _fake_cpu(monkeypatch, info):
    monkeypatch.setattr(device_caps, 'read_cpuinfo', lambda path=None: info)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)


def _small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4))


def _wrapper(model, **kw):
    return build_optim_wrapper(model, dict(type='MixedPrecisionOptimWrapper', **kw,
                                           optimizer=dict(type='SGD', lr=0.1, momentum=0.9, fused=True)))


def _conv_dtype(model, wrapper):
    with wrapper.optim_context(model):
        return model[0](torch.randn(1, 3, 8, 8)).dtype


@pytest.mark.parametrize('cpu,dtype,autocast', [(XEON, 'fp32', torch.float32), (ZEN4, 'bf16', torch.bfloat16)])
def test_wrapper_auto_follows_the_cpu_and_says_why(monkeypatch, cpu, dtype, autocast):
    _fake_cpu(monkeypatch, cpu)
    model = _small_model()
    with logged(f'test_amp_auto_{dtype}') as records:
        wrapper = _wrapper(model)  # amp_dtype defaults to auto, as --amp gives it
    assert isinstance(wrapper, MixedPrecisionOptimWrapper) and wrapper.amp_dtype == dtype
    assert not wrapper.loss_scaler.is_enabled()  # loss scaling only with fp16
    assert _conv_dtype(model, wrapper) == autocast
    assert [r.getMessage() for r in records if 'mixed precision' in r.getMessage()] == \
        [f'mixed precision: {device_caps.describe(dtype)} ({wrapper.amp_reason})']
    assert cpu[0] in wrapper.amp_reason

    # the dry-run trick table says the same on the same machine
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cls', 'resnet50d_efficient.py'))
    assert cfg.optim_wrapper.amp_dtype == 'auto'
    row = dict(trick_table(cfg, 8))['mixed precision']
    assert row == (f"{'off' if dtype == 'fp32' else 'on'}: {device_caps.describe(dtype)} ({wrapper.amp_reason}; "
                   'MixedPrecisionOptimWrapper)')


def test_forced_dtype_the_cpu_lacks_runs_with_a_warning(monkeypatch):
    _fake_cpu(monkeypatch, XEON)
    model = _small_model()
    with logged('test_amp_forced') as records:
        wrapper = _wrapper(model, amp_dtype='bf16')
    assert wrapper.amp_dtype == 'bf16' and _conv_dtype(model, wrapper) == torch.bfloat16
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and 'bf16 is not native on this cpu' in warnings[0], warnings


# ---------------------------------------------------------------- the fp16 path on the CPU
def _loss(model, wrapper, x, y):
    with wrapper.optim_context(model):
        return F.cross_entropy(model(x).float(), y)


@pytest.mark.parametrize('fused', [True, False])
def test_fp16_scales_the_loss_and_skips_a_step_on_overflow(fused):
    model = _small_model()
    wrapper = build_optim_wrapper(model, dict(type='MixedPrecisionOptimWrapper', amp_dtype='fp16', optimizer=dict(
        type='SGD', lr=0.1, momentum=0.9, fused=fused)))
    scaler = wrapper.loss_scaler
    assert scaler.is_enabled() and scaler.get_scale() == 2.0 ** 16 and _conv_dtype(model, wrapper) == torch.float16
    x, y = torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 3])

    # backward through the scaler: the gradients are the fp16 autocast gradients x 65536
    loss = _loss(model, wrapper, x, y)
    reference = torch.autograd.grad(_loss(model, wrapper, x, y), list(model.parameters()))
    wrapper.backward(loss)
    for p, g in zip(model.parameters(), reference):  # (fp16 rounds the unscaled small gradients: 1e-2 of the max)
        assert (p.grad / 2.0 ** 16 - g).abs().max() <= 1e-2 * g.abs().max()
        assert p.grad.abs().max() > 1000 * g.abs().max()
    before = [p.detach().clone() for p in model.parameters()]
    wrapper.step()  # unscales, finds no inf, steps
    wrapper.zero_grad()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert scaler.get_scale() == 2.0 ** 16

    # an overflow (an inf in one gradient): the step is skipped, the scale halves
    params = [p.detach().clone() for p in model.parameters()]
    momentum = [wrapper.optimizer.state[p]['momentum_buffer'].clone() for p in model.parameters()]
    wrapper.backward(_loss(model, wrapper, x, y))
    model[0].weight.grad[0, 0, 0, 0] = float('inf')
    wrapper.step()
    wrapper.zero_grad()
    assert all(torch.equal(a, p) for a, p in zip(params, model.parameters()))
    assert all(torch.equal(m, wrapper.optimizer.state[p]['momentum_buffer'])
               for m, p in zip(momentum, model.parameters()))
    assert scaler.get_scale() == 2.0 ** 15

    # an overflow from the loss itself, through mmengine's update_params: skipped again, halved again
    wrapper.update_params(_loss(model, wrapper, x, y) * float('inf'))
    assert all(torch.equal(a, p) for a, p in zip(params, model.parameters()))
    assert scaler.get_scale() == 2.0 ** 14

    # and a finite step after it trains again
    wrapper.update_params(_loss(model, wrapper, x, y))
    assert not torch.equal(params[0], model[0].weight)


def test_scaler_state_round_trips_and_crosses_precisions():
    model = _small_model()
    x, y = torch.randn(4, 3, 12, 12), torch.tensor([0, 1, 2, 3])
    fp16 = _wrapper(model, amp_dtype='fp16', loss_scale=dict(init_scale=1024.0, growth_interval=2))
    for _ in range(3):
        fp16.update_params(_loss(model, fp16, x, y))
    state = fp16.state_dict()
    assert state['loss_scaler'] == dict(scale=2048.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=2,
                                        _growth_tracker=1)
    fresh = _wrapper(model, amp_dtype='fp16', loss_scale=dict(growth_interval=2))
    fresh.load_state_dict(state)
    assert fresh.loss_scaler.state_dict() == state['loss_scaler']
    assert fresh.optimizer.state_dict()['state'].keys() == fp16.optimizer.state_dict()['state'].keys()

    # bf16 / fp32 runs save no scaler (their checkpoints are those of a plain OptimWrapper) ...
    bf16 = _wrapper(model, amp_dtype='bf16')
    assert 'loss_scaler' not in bf16.state_dict()
    with logged('test_amp_cross') as records:
        bf16.load_state_dict(state)  # ... and ignore one, saying so
        fresh16 = _wrapper(model, amp_dtype='fp16')
        fresh16.load_state_dict(bf16.state_dict())  # a bf16 checkpoint into an fp16 run: a fresh scale
    assert fresh16.loss_scaler.get_scale() == 2.0 ** 16
    messages = ' | '.join(r.getMessage() for r in records)
    assert "loss-scaler state is not used: this run trains in bf16" in messages
    assert 'holds no loss-scaler state' in messages


# ---------------------------------------------------------------- through tools/pretrain.py
FP16 = ("optim_wrapper = dict(type='MixedPrecisionOptimWrapper', amp_dtype='fp16',\n"
        "                     loss_scale=dict(init_scale=512.0, growth_interval=3))\n")
SETUP = dict(num_classes=4, batch=8, epochs=2)  # 4 iterations per epoch
KILL_AT = 6  # in epoch 2, after the epoch-1 checkpoint


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_fp16_sigkill_then_resume_equals_the_uninterrupted_run(tmp_path):
    """The scale grows every 3 finite steps (512 -> 1024 after iteration 3): the epoch-1 checkpoint holds a
    scale and growth tracker a fresh scaler would not have, and the resumed run ends bitwise where the
    uninterrupted one does only if it restored them."""
    data = make_shapes_imagenet(str(tmp_path / 'data'), num_classes=4, per_class={'train': 8}, size=36)
    full = cls_config(str(tmp_path / 'full.py'), data, **SETUP, extra=FP16)
    killed = cls_config(str(tmp_path / 'killed.py'), data, **SETUP, kill_at=KILL_AT, extra=FP16)
    proc = run_tool('pretrain', full, '--work-dir', str(tmp_path / 'full'))
    assert 'mixed precision: fp16 autocast + dynamic loss scaling (amp_dtype=fp16 (forced)' in proc.stdout

    work = str(tmp_path / 'killed')
    proc = run_tool('pretrain', killed, '--work-dir', work, check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert checkpoint_files(work) == ['epoch_1.pth', 'last_checkpoint']
    saved = load_training_state(osp.join(work, 'epoch_1.pth'))['optimizer']['loss_scaler']
    assert saved == dict(scale=1024.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=3, _growth_tracker=1)
    run_tool('pretrain', full, '--work-dir', work, '--resume')

    uninterrupted = load_training_state(str(tmp_path / 'full' / 'epoch_2.pth'))
    resumed = load_training_state(osp.join(work, 'epoch_2.pth'))
    assert resumed['meta']['iter'] == 8
    assert resumed['optimizer']['loss_scaler'] == uninterrupted['optimizer']['loss_scaler']
    assert uninterrupted['optimizer']['loss_scaler']['scale'] == 2048.0  # grew again after iteration 6
    assert _max_diff(uninterrupted['state_dict'], state_dict(osp.join(work, 'epoch_1.pth'))) > 1e-3
    assert _max_diff(uninterrupted['state_dict'], resumed['state_dict']) == 0.0
