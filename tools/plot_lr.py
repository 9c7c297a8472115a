"""Plot the learning-rate schedule of a pretraining config (per iteration) to a PNG.

    python tools/plot_lr.py configs/cls/resnet50d_cosine.py --iters-per-epoch 1251 --world-size 8 --out lr.png

The schedule is replayed with mmengine's own schedulers (classification.lr_schedule), including
linear scaling; ImageNet at batch 1024 has 1251 iterations per epoch.
"""
from __future__ import annotations

import matplotlib
from mmengine.config import Config

import safe_write
from tool_boundary import ToolArgumentParser, int_range, run_tool, world_size

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def main(argv=None) -> str:
    parser = ToolArgumentParser(description='Plot a config\'s lr schedule')
    parser.add_argument('configs', nargs='+', help='one or more pretraining configs')
    parser.add_argument('--iters-per-epoch', type=int_range(1, 100_000), default=1251,
                        help='1 to 100000 (ImageNet at a total batch of 16: 80000)')
    parser.add_argument('--world-size', type=world_size, default=8, help='processes (linear lr scaling)')
    parser.add_argument('--out', default='lr_schedule.png')
    args = parser.parse_args(argv)
    import classification  # noqa: F401
    from classification import lr_schedule
    fig, ax = plt.subplots(figsize=(8, 4))
    for path in args.configs:
        lrs = lr_schedule(Config.fromfile(path), args.iters_per_epoch, args.world_size)
        ax.plot([i / args.iters_per_epoch for i in range(len(lrs))], lrs, label=path.rsplit('/', 1)[-1])
    ax.set_xlabel('epoch')
    ax.set_ylabel('learning rate')
    ax.legend()
    fig.tight_layout()
    safe_write.write_with(args.out, lambda tmp: fig.savefig(tmp, format='png', dpi=100), what='figure')
    print(f'wrote {args.out}')
    return args.out


if __name__ == '__main__':
    run_tool(main)
