"""What the training device computes natively, and the mixed-precision choice that follows from it.

One rule for every part that picks a precision: the optimizer wrapper (``engine.amp``), the trick table
(``classification.trick_report``) and the benchmark tools all call :func:`amp_choice`, so a run, its
``--dry-run`` and the plain loop it is measured against choose the same way.

* CUDA: ``auto`` is fp16 with dynamic loss scaling, the paper's setting (tensor cores on every GPU torch
  supports); bf16 is native from compute capability 8.0 (Ampere) on.
* CPU: ``auto`` is bf16 autocast only where the CPU has bf16 instructions (x86 ``avx512_bf16`` or
  ``amx_bf16``; ARM ``bf16``), fp32 otherwise. ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` says True
  on CPUs that only emulate bf16 (AVX-512 without bf16: a ResNet-50-D train step measured 0.52x fp32), so
  the flags decide. fp16 is native on x86 with ``avx512_fp16`` / ``amx_fp16``, on ARM with ``fphp``.

Standard library and torch only, beside ``user_errors`` at the bottom of the import graph.
"""
from __future__ import annotations

import functools
import platform

import torch

from user_errors import ConfigError

AMP_DTYPES = ('auto', 'fp16', 'bf16', 'fp32')
TORCH_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp32': torch.float32}
CPUINFO = '/proc/cpuinfo'
CPU_FLAGS = {'bf16': ('avx512_bf16', 'amx_bf16', 'bf16'), 'fp16': ('avx512_fp16', 'amx_fp16', 'fphp')}


def parse_cpuinfo(text: str) -> tuple[str, frozenset]:
    """(model name, flags) of a /proc/cpuinfo text: x86 ``model name`` / ``flags``, ARM ``Features``."""
    model, flags = '', set()
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if not sep:
            continue
        key = key.strip().lower()
        if key in ('model name', 'cpu model', 'hardware') and not model:
            model = value.strip()
        elif key in ('flags', 'features') and not flags:
            flags = set(value.split())
    return model, frozenset(flags)


@functools.lru_cache(maxsize=None)
def read_cpuinfo(path: str = CPUINFO) -> tuple[str, frozenset]:
    """(model name, flags) of this machine's CPU; ('', empty) where there is no /proc/cpuinfo."""
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            model, flags = parse_cpuinfo(f.read())
    except OSError:
        model, flags = '', frozenset()
    return model or platform.processor() or platform.machine() or 'unknown CPU', flags


def training_device() -> str:
    """'cuda' where torch sees a GPU (the Runner puts the model there), else 'cpu'."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def device_name(device: str | None = None) -> str:
    """The GPU's name or the CPU's model name."""
    device = device or training_device()
    return torch.cuda.get_device_name() if device == 'cuda' else read_cpuinfo()[0]


def native(dtype: str, device: str | None = None, cpuinfo: tuple[str, frozenset] | None = None) -> tuple[bool, str]:
    """Whether ``device`` computes ``dtype`` ('fp16' / 'bf16' / 'fp32') natively, and why (one phrase).
    ``cpuinfo``: (model, flags) instead of this machine's (tests)."""
    device = device or training_device()
    if dtype == 'fp32':
        return True, 'fp32 runs natively everywhere'
    if device == 'cuda':
        cap = torch.cuda.get_device_capability()
        need = (8, 0) if dtype == 'bf16' else (5, 3)
        ok = cap >= need
        return ok, (f'{torch.cuda.get_device_name()} (compute capability {cap[0]}.{cap[1]}) '
                    f'{"computes" if ok else "has no native"} {dtype}' + ('' if ok else f' (needs {need[0]}.{need[1]})'))
    if device != 'cpu':
        return False, f'no rule for {dtype} on device {device!r}'
    model, flags = cpuinfo if cpuinfo is not None else read_cpuinfo()
    have = [f for f in CPU_FLAGS[dtype] if f in flags]
    if have:
        return True, f'CPU {model} has {"/".join(have)}: native {dtype}'
    return False, f'CPU {model} has no {"/".join(CPU_FLAGS[dtype][:2])} flag: {dtype} would be emulated'


def amp_choice(requested: str = 'auto', device: str | None = None,
               cpuinfo: tuple[str, frozenset] | None = None) -> tuple[str, str]:
    """(dtype, reason): the precision training runs in for ``amp_dtype=requested`` on ``device``
    (default: the training device), dtype one of 'fp16' (autocast + dynamic loss scaling), 'bf16'
    (autocast) or 'fp32'. A forced dtype is returned as asked; :func:`native` says whether it runs
    natively (callers warn when it does not)."""
    if requested not in AMP_DTYPES:
        raise ConfigError(f'amp_dtype {requested!r}: expected one of {", ".join(AMP_DTYPES)}')
    device = device or training_device()
    if requested != 'auto':
        ok, why = native(requested, device, cpuinfo)
        return requested, f'amp_dtype={requested} (forced); {why}' + ('' if ok else ': expect it slower than fp32')
    if device == 'cuda':
        return 'fp16', (f'amp_dtype=auto on CUDA ({torch.cuda.get_device_name()}): the paper\'s fp16 with dynamic '
                        'loss scaling')
    if device != 'cpu':
        return 'fp32', f'amp_dtype=auto on {device}: no mixed-precision rule for this device'
    ok, why = native('bf16', device, cpuinfo)
    return ('bf16' if ok else 'fp32'), f'amp_dtype=auto; {why}' + ('' if ok else ', slower than fp32')


def describe(dtype: str) -> str:
    """'fp16 autocast + dynamic loss scaling', 'bf16 autocast' or 'fp32'."""
    return {'fp16': 'fp16 autocast + dynamic loss scaling', 'bf16': 'bf16 autocast', 'fp32': 'fp32'}[dtype]


def capability_line(device: str | None = None) -> str:
    """One line for a benchmark's head: the device, its bf16 / fp16 capability and what ``auto`` picks, e.g.
    'CPU AMD EPYC: bf16 native (avx512_bf16), fp16 not native; amp_dtype=auto -> bf16 autocast'."""
    device = device or training_device()
    flags = read_cpuinfo()[1] if device == 'cpu' else frozenset()
    parts = []
    for dtype in ('bf16', 'fp16'):
        ok, _ = native(dtype, device)
        have = [f for f in CPU_FLAGS[dtype] if f in flags]
        parts.append(f'{dtype} {"native" if ok else "not native"}' + (f' ({"/".join(have)})' if have else ''))
    choice, _ = amp_choice('auto', device)
    kind = 'GPU' if device == 'cuda' else device.upper()
    return f'{kind} {device_name(device)}: {", ".join(parts)}; amp_dtype=auto -> {describe(choice)}'
