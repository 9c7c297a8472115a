"""Training throughput (images/s) of ResNet-50-D as users train it, next to torchvision's ResNet-50.

    python tools/benchmark_train.py [--batch 8] [--warmup 3] [--iters 10] [--device cpu|cuda] [--size 224]

Our model is the BagClassifier of configs/cls/resnet50d_efficient.py (ResNet-50-D, zero gamma, Xavier
init, 1000 classes), trained by mmengine's own ``train_step`` with the optimizer wrapper the config
builds (Nesterov SGD, no bias decay through paramwise_cfg): forward, loss, backward, SGD step. It runs
in fp32 (a plain OptimWrapper), in mixed precision (the config's MixedPrecisionOptimWrapper forced to bf16
autocast on CPU, fp16 with loss scaling on CUDA), and both again with the backbone's channels-last switch
(``channels_last``, on in the shipped configs); its SGD is fused as in the configs (``--no-fused``: torch's
default). The config's ``amp_dtype='auto'`` picks one of the two precisions by what the device computes
natively (device_caps.amp_choice); the row the shipped config runs is marked, and the first line printed names
the device and its bf16 / fp16 capability. The reference
is a plain torchvision ``resnet50()`` fp32 step (cross entropy, the same SGD) in the same process. Each variant runs
``--warmup`` untimed iterations; then ``--iters`` rounds time one iteration of every variant in turn, so
all variants see the same machine load (other jobs on a shared machine). img/s = batch / median
iteration time; the ratio is the median over rounds of (reference time / variant time) in that round.
Inputs are random tensors: this measures the model step, not data loading.
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import statistics
import sys
import time

import torch
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
from tool_boundary import ToolArgumentParser, int_range, run_tool  # noqa: E402  (the repository on the path first)
CONFIG = osp.join(REPO, 'configs', 'cls', 'resnet50d_efficient.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Training img/s: ResNet-50-D (fp32 / mixed precision / '
                                                 'channels-last) vs torchvision ResNet-50 fp32')
    parser.add_argument('--batch', type=int_range(1, 1024), default=8)
    parser.add_argument('--warmup', type=int_range(0, 1000), default=3, help='untimed iterations per variant')
    parser.add_argument('--iters', type=int_range(1, 10_000), default=10, help='timed iterations per variant')
    parser.add_argument('--size', type=int_range(32, 1024), default=224, help='input height and width')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--no-fused', dest='fused', action='store_false',
                        help="our model's SGD without fused=True (torch's per-tensor loop, as the reference)")
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no CUDA device')
    return args


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def time_step(step, device: str) -> float:
    start = time.perf_counter()
    step()
    _sync(device)
    return time.perf_counter() - start


def batch_of(args, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(args.batch, 3, args.size, args.size, device=args.device)
    y = torch.randint(0, 1000, (args.batch,), device=args.device)
    return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y


def ours(args, amp_dtype: str, channels_last: bool):
    """A training step of the config's BagClassifier through mmengine's train_step and optimizer wrapper."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import engine  # noqa: F401  (registers MixedPrecisionOptimWrapper)
    from classification import MODELS
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.channels_last = channels_last  # the config's switch (on in the shipped configs)
    model = MODELS.build(cfg.model).to(args.device).train()
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg.optimizer.fused = args.fused
    optim_cfg.optimizer.lr = 0.1 * args.batch / 256  # what auto_scale_lr gives one process
    if optim_cfg.type != 'MixedPrecisionOptimWrapper':
        raise ValueError(f'{CONFIG}: expected optim_wrapper.type MixedPrecisionOptimWrapper, got {optim_cfg.type}')
    if amp_dtype == 'fp32':
        optim_cfg.type = 'OptimWrapper'
        optim_cfg.pop('amp_dtype', None)
    else:
        optim_cfg.amp_dtype = amp_dtype
    optim_wrapper = build_optim_wrapper(model, optim_cfg)
    x, y = batch_of(args, channels_last=False)  # NCHW, as a data loader delivers it; the backbone converts it
    return lambda: model.train_step(dict(inputs=x, data_samples=y), optim_wrapper)


def torchvision_reference(args):
    import torchvision
    model = torchvision.models.resnet50().to(args.device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1 * args.batch / 256, momentum=0.9, weight_decay=1e-4,
                          nesterov=True)
    x, y = batch_of(args, channels_last=False)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


def main(argv=None) -> list[tuple[str, float, float]]:
    args = parse_args(argv)
    from mmengine.logging import MMLogger
    MMLogger.get_instance('benchmark_train', log_level='WARNING')  # not the per-parameter paramwise_cfg lines
    from device_caps import amp_choice, capability_line
    print(capability_line(args.device), flush=True)  # first line: the device, its bf16 capability, auto's pick
    mixed = 'fp16' if args.device == 'cuda' else 'bf16'
    auto, why = amp_choice('auto', args.device)
    names = {'fp32': 'fp32', 'bf16': 'bf16 autocast', 'fp16': 'fp16 AMP'}

    def label(dtype: str, cl: bool) -> str:
        return (f'ResNet-50-D, {names[dtype]}' + (', channels-last' if cl else '')
                + (' (as shipped: auto)' if dtype == auto and cl else ''))
    variants = [('torchvision resnet50, fp32', lambda: torchvision_reference(args))]
    variants += [(label(dtype, cl), lambda dtype=dtype, cl=cl: ours(args, amp_dtype=dtype, channels_last=cl))
                 for cl in (False, True) for dtype in ('fp32', mixed)]
    print(f'training step, batch {args.batch} at {args.size}x{args.size}, {args.warmup} warmup iterations + {args.iters} '
          f'timed rounds per variant; torch {torch.__version__}, {torch.get_num_threads()} threads; auto: {why}')
    steps = [build() for _, build in variants]
    for step in steps:
        for _ in range(args.warmup):
            step()
    times = [[] for _ in steps]  # times[variant][round]
    for r in range(args.iters):
        for i, step in enumerate(steps):
            times[i].append(time_step(step, args.device))
        print(f'  round {r + 1}/{args.iters}: ' + ' '.join(f'{t[-1]:.2f}s' for t in times), flush=True)
    rows = []
    for (name, _), t in zip(variants, times):
        ratio = statistics.median(ref / own for ref, own in zip(times[0], t))
        rows.append((name, args.batch / statistics.median(t), ratio))
    width = max(len(n) for n, *_ in rows)
    print(f'\n{"variant":<{width}}  {"img/s":>8}  {"vs torchvision":>14}')
    for name, ips, ratio in rows:
        print(f'{name:<{width}}  {ips:8.2f}  {ratio:13.2f}x')
    return rows


if __name__ == '__main__':
    run_tool(main)
