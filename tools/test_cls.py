"""Evaluate a classifier checkpoint on the config's test split (top-1 / top-5) and write JSON.

    python tools/test_cls.py configs/cls/resnet50d_tricks.py work_dirs/resnet50d_tricks/epoch_200.pth
        [--work-dir DIR] [--out FILE] [--cfg-options k=v ...] [--launcher pytorch] [--weights ema|raw]

The checkpoint is read with the restricted loader (see backbones.checkpoint) and checked strictly against
the classifier the config builds (architecture, variant, classes) before any data is read. Results go to
<work-dir>/test_results.json (the config's ResultsHook, engine/results.py) unless --out is given; an --out that is a directory or an input file is
refused before the evaluation. A checkpoint trained with EMAHook is evaluated with its EMA weights unless
--weights raw (engine/ema.py); --weights ema on a checkpoint without them is an error.

--sizes 224,256,288 [--crop-ratio 0.875] evaluates the checkpoint at each test size (centre crop S after resizing
the shorter side to round(S / ratio); the paper's 0.875 unless told otherwise) in one run, one results record per
size: test_results_<S>.json (or --out with _<S> before its extension, or {size} in it replaced), with test_size,
test_resize and crop_ratio in its provenance (engine/test_resolution.py, docs/test_resolution_and_onnx.md).
"""
from __future__ import annotations

import argparse

from engine import add_test_args, build_test_config, runner_from_cfg
from engine.test_resolution import add_size_args, apply_test_sizes
from tool_boundary import ToolArgumentParser, run_tool


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Test a pretrained classifier')
    add_test_args(parser, checkpoint_help='classifier checkpoint (backbone.* + head.fc.*)')
    add_size_args(parser)  # --sizes, --crop-ratio (engine/test_resolution.py)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg, out = build_test_config(args)
    sizes = None
    if args.sizes or args.crop_ratio is not None:  # one record per test size, each checked writable now
        sizes = apply_test_sizes(cfg, args.sizes, args.crop_ratio, out, inputs=(args.checkpoint, args.config))
    cfg.model.pop('distill', None)  # evaluation needs no teacher
    runner = runner_from_cfg(cfg)  # reads the checkpoint and checks it fits the model
    metrics = runner.test()
    for s in sizes or ():
        print(f'size {s["test_size"]} (resize {s["test_resize"]}, crop ratio {s["crop_ratio"]}): '
              f'top-k accuracy: {metrics[s["test_size"]]} -> {s["file"]}')
    if sizes is None:
        print(f'top-k accuracy: {metrics} -> {out}')
    return metrics


if __name__ == '__main__':
    run_tool(main)
