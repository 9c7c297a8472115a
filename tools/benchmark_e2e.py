"""End-to-end pretraining throughput: ``tools/pretrain.py`` next to a plain PyTorch loop, same run.

    python tools/benchmark_e2e.py [--config configs/cls/resnet50d_cosine_ls_mixup.py] [--batch 16]
        [--workers 2] [--iters 24] [--skip 6] [--rounds 2] [--channels-last on,off] [--data DIR]

Both sides train the config's classifier (ResNet-50-D by default) on the same ImageNet-style folder of
real-photo JPEGs (experiments/photos.py: labelme-examples photos at 400-500 px; or ``--data``), with the
same recipe: the paper's augmentation (torchvision decode, RandomResizedCrop 224, flip, colour jitter
0.4, PCA lighting, normalisation), the config's label smoothing and mixup, Nesterov SGD without bias
decay, warmup + cosine per iteration, the config's precision as this machine resolves it (both sides call
``device_caps.amp_choice``: ``amp_dtype='auto'`` is fp16 + loss scaling on CUDA, bf16 autocast on a CPU with
bf16 instructions, fp32 on other CPUs), a DataLoader with the same batch size and workers. The first line
printed names the CPU model (or the GPU) and its bf16 capability.

* the tool: ``tools/pretrain.py CONFIG`` as a user runs it, with only the data root, class count, batch
  size, workers, one epoch of ``--iters`` iterations and per-iteration logging overridden; its
  iteration times are read from the run's ``vis_data/scalars.json`` (IterTimerHook: data wait included);
  the lr schedule is compressed into that epoch (warmup over its first quarter, then cosine).
* the plain loop: the same network built from the config, written as a hand-made PyTorch loop
  (torchvision ``DatasetFolder`` + ``decode_image`` + ``transforms.v2``, ``torch.autocast``, SGD).

Each side runs in its own fresh interpreter. Rounds alternate the order (tool first, then plain first),
so both see the same machine load; img/s = batch / median iteration time after ``--skip`` warm-up
iterations, the ratio is the median over rounds of tool img/s / plain img/s.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
import tool_boundary  # noqa: E402  (the repository on the path first; qualified: run_tool below runs pretrain.py)
DEFAULT_CONFIG = 'configs/cls/resnet50d_cosine_ls_mixup.py'


def parse_args(argv=None) -> argparse.Namespace:
    parser = tool_boundary.ToolArgumentParser(
        description='tools/pretrain.py vs a plain PyTorch loop: img/s, same data and recipe, interleaved rounds')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    int_range = tool_boundary.int_range
    parser.add_argument('--batch', type=int_range(1, 1024), default=16)
    parser.add_argument('--workers', type=int_range(0, 256), default=2)
    parser.add_argument('--iters', type=int_range(1, 100_000), default=24, help='iterations per run (one epoch)')
    parser.add_argument('--skip', type=tool_boundary.non_negative_int, default=6,
                        help='warm-up iterations left out of the median (fewer than --iters)')
    parser.add_argument('--rounds', type=int_range(1, 1000), default=2)
    parser.add_argument('--classes', type=int_range(1, 1000), default=8)
    parser.add_argument('--channels-last', default='on,off', help="comma list of 'on'/'off'")
    parser.add_argument('--data', help='an ImageNet-style folder to use instead of generating one')
    parser.add_argument('--plain', metavar='OUT_JSON', help=argparse.SUPPRESS)  # child mode: the plain loop
    parser.add_argument('--cl', choices=['on', 'off'], default='on', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    settings = args.channels_last.split(',')
    if any(s not in ('on', 'off') for s in settings):
        parser.error(f"--channels-last: expected a comma list of 'on'/'off', got {args.channels_last!r}")
    if args.skip >= args.iters:
        parser.error(f'--skip {args.skip}: expected fewer than --iters {args.iters}')
    if not osp.isfile(osp.join(REPO, args.config) if not osp.isabs(args.config) else args.config):
        parser.error(f'--config: no such file {args.config}')
    args.settings = settings
    return args


# ---------------------------------------------------------------------------------------------------
# the plain loop (child process)
# ---------------------------------------------------------------------------------------------------
def plain_loop(args) -> None:
    import torch
    import torch.nn.functional as F
    from mmengine.config import Config
    from torchvision.datasets import DatasetFolder
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms import v2

    from classification import MODELS

    cfg = Config.fromfile(osp.join(REPO, args.config))
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    eigval = torch.tensor([0.2175, 0.0188, 0.0045]) * 255
    eigvec = torch.tensor([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])

    def lighting(img):  # AlexNet PCA noise, alpha ~ N(0, 0.1)
        return img + (eigvec @ (torch.randn(3) * 0.1 * eigval)).view(3, 1, 1)

    mean, std = cfg.mean, cfg.std
    transform = v2.Compose([v2.RandomResizedCrop(224, antialias=True), v2.RandomHorizontalFlip(),
                            v2.ColorJitter(0.4, 0.4, 0.4), v2.ToDtype(torch.float32, scale=False), lighting,
                            v2.Normalize(mean, std)])
    dataset = DatasetFolder(osp.join(args.data, 'train'), extensions=('.jpeg', '.jpg'), transform=transform,
                            loader=lambda p: decode_image(read_file(p), mode=ImageReadMode.RGB))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)

    model_cfg = dict(cfg.model, distill=None, num_classes=args.classes)
    model_cfg['backbone'] = dict(model_cfg['backbone'], channels_last=False)  # the loop does it itself
    model = MODELS.build(model_cfg).to(device).train()
    memory_format = torch.channels_last if args.cl == 'on' else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # no bias decay: biases, BN gamma/beta
    opt_cfg = cfg.optim_wrapper.optimizer
    lr = opt_cfg.lr * args.batch / 256  # linear scaling
    optimizer = torch.optim.SGD([dict(params=decay), dict(params=no_decay, weight_decay=0.0)], lr=lr,
                                momentum=opt_cfg.momentum, weight_decay=opt_cfg.weight_decay, nesterov=True)
    total = min(len(loader), args.iters)
    warmup = max(1, int(0.25 * total))  # as the tool's run: warmup over the first quarter, then cosine
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: (i + 1) / warmup if i < warmup else
                                                  0.5 * (1 + math.cos(math.pi * (i - warmup) / (total - warmup))))
    eps, alpha = cfg.model.get('label_smoothing', 0.0), cfg.model.get('mixup_alpha', 0.0)
    # the precision the tool's optimizer wrapper picks for this config on this machine (engine/amp.py)
    from device_caps import TORCH_DTYPES, amp_choice
    wrapper = cfg.optim_wrapper
    dtype = amp_choice(wrapper.get('amp_dtype', 'auto'), device)[0] \
        if wrapper.get('type') == 'MixedPrecisionOptimWrapper' else 'fp32'
    amp_dtype = TORCH_DTYPES[dtype]
    scaler = torch.amp.GradScaler(device, enabled=dtype == 'fp16')
    beta = torch.distributions.Beta(alpha, alpha) if alpha > 0 else None

    times = []
    last = time.perf_counter()
    for images, labels in loader:
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        targets = torch.full((labels.shape[0], args.classes), eps / (args.classes - 1), device=device)
        targets.scatter_(1, labels.view(-1, 1), 1 - eps)
        if beta is not None:
            lam, perm = float(beta.sample()), torch.randperm(images.shape[0], device=device)
            images = lam * images + (1 - lam) * images[perm]
            targets = lam * targets + (1 - lam) * targets[perm]
        with torch.autocast(device_type=device, dtype=amp_dtype, enabled=dtype != 'fp32'):
            logits = model.logits(images)
        loss = -(targets * F.log_softmax(logits.float(), dim=1)).sum(1).mean()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss.item()  # as the Runner's loss logging does every iteration
        now = time.perf_counter()
        times.append(now - last)
        last = now
        if len(times) == args.iters:
            break
    import safe_write
    safe_write.write_json(args.plain, times, what='--plain file')


# ---------------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------------
def run_tool(args, cl: str, work_dir: str) -> list[float]:
    options = [f'train_dataloader.dataset.data_root={args.data}', f'val_dataloader.dataset.data_root={args.data}',
               f'test_dataloader.dataset.data_root={args.data}', f'model.num_classes={args.classes}',
               f'train_dataloader.batch_size={args.batch}',
               f'train_dataloader.num_workers={args.workers}', 'val_dataloader.num_workers=0',
               'val_dataloader.persistent_workers=False', 'train_cfg.max_epochs=1',
               # the schedule compressed into the one epoch: warmup over its first quarter, then cosine
               'param_scheduler.0.end=0.25', 'param_scheduler.1.begin=0.25',
               'default_hooks.logger.interval=1', 'log_processor.window_size=1',
               f'model.backbone.channels_last={cl == "on"}']
    cmd = [sys.executable, osp.join(REPO, 'tools', 'pretrain.py'), args.config, '--work-dir', work_dir,
           '--cfg-options', *options]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'error: tools/pretrain.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    scalars = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    if len(scalars) != 1:
        raise SystemExit(f'error: expected one scalars.json under {work_dir}, found {len(scalars)}')
    with open(scalars[0]) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if 'loss' in r and 'time' in r]
    args.data_time.append(statistics.median(r['data_time'] for r in rows[args.skip:]))
    return [r['time'] for r in rows]


def run_plain(args, cl: str, out: str) -> list[float]:
    cmd = [sys.executable, osp.abspath(__file__), '--plain', out, '--cl', cl, '--config', args.config,
           '--data', args.data, '--batch', str(args.batch), '--workers', str(args.workers),
           '--iters', str(args.iters), '--skip', str(args.skip), '--classes', str(args.classes)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f'error: the plain loop failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    with open(out) as f:
        return json.load(f)


def img_per_s(times: list[float], batch: int, skip: int) -> float:
    steady = times[skip:]
    if not steady:
        raise SystemExit(f'error: a run logged {len(times)} iterations; expected more than --skip {skip}')
    return batch / statistics.median(steady)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.plain:
        plain_loop(args)
        return []
    import torch

    from device_caps import capability_line, device_name
    print(capability_line(), flush=True)  # first line: the CPU model (or GPU), its bf16 capability, auto's pick
    tmp = tempfile.mkdtemp(prefix='bagtricks_e2e_')
    try:
        return compare(args, tmp, device_name(), torch.__version__)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(args, tmp: str, device: str, torch_version: str) -> list[dict]:
    args.data_time = []
    if not args.data:
        from experiments.photos import make_photo_imagenet
        args.data = make_photo_imagenet(osp.join(tmp, 'photos'), args.classes,
                                        {'train': math.ceil(args.iters * args.batch / args.classes), 'val': 1})
    print(f'{args.config}: batch {args.batch}, {args.workers} workers, {args.iters} iterations per run '
          f'({args.skip} warm-up), {args.rounds} rounds; {device}, {os.cpu_count()} cores, torch {torch_version}',
          flush=True)
    results = {cl: {'tool': [], 'plain': []} for cl in args.settings}
    for r in range(args.rounds):
        for cl in args.settings:
            order = ('tool', 'plain') if r % 2 == 0 else ('plain', 'tool')
            for side in order:
                if side == 'tool':
                    times = run_tool(args, cl, osp.join(tmp, f'tool_{cl}_{r}'))
                else:
                    times = run_plain(args, cl, osp.join(tmp, f'plain_{cl}_{r}.json'))
                results[cl][side].append(img_per_s(times, args.batch, args.skip))
            print(f'  round {r + 1}/{args.rounds}, channels-last {cl}: tool {results[cl]["tool"][-1]:.2f} img/s, '
                  f'plain loop {results[cl]["plain"][-1]:.2f} img/s', flush=True)
    rows = []
    print(f'\n{"channels-last":<14} {"tool img/s":>11} {"plain img/s":>12} {"tool/plain":>11}')
    for cl in args.settings:
        tool, plain = results[cl]['tool'], results[cl]['plain']
        ratio = statistics.median(t / p for t, p in zip(tool, plain))
        rows.append(dict(channels_last=cl, tool=statistics.median(tool), plain=statistics.median(plain), ratio=ratio))
        print(f'{cl:<14} {rows[-1]["tool"]:11.2f} {rows[-1]["plain"]:12.2f} {ratio:10.2f}x')
    print(f'tool data wait per iteration (median of runs): {statistics.median(args.data_time):.3f} s')
    return rows


if __name__ == '__main__':
    tool_boundary.run_tool(main)
