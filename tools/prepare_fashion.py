"""Write Fashion-MNIST in the real formats the three tasks read (reproducible, seeded).

    python tools/prepare_fashion.py [--out data/fashion] [--scenes-train 1000] [--scenes-val 200]

out/imagenet/{train,val}/<class>/*.png        classification (ImageNet folder layout)
out/VOCdevkit/VOC2007/...                     detection scenes (JPEG + VOC XML, trainval / test)
out/ADEChallengeData2016/...                  the same scenes for segmentation (JPEG + PNG labels)
The tree is written whole through the writing layer (safe_write.write_tree: built in a temporary folder,
then renamed into place), so it is complete or absent. An existing complete output is kept when
``COMPLETE.json`` inside it records the same arguments; one written with other arguments is replaced. A
folder this project did not write, a link or a file at ``--out`` is an error, before any work.
"""
import argparse
import json
import os.path as osp
import time

import safe_write
from experiments.fashion import find_source, write_classification, write_scenes
from tool_boundary import ToolArgumentParser, int_range, numpy_seed, positive_int, run_tool

MARKER = 'COMPLETE.json'  # the arguments the tree was written with
MIN_SCENE = 56  # scene items are Fashion-MNIST's 28 px scaled up to 2x
MAX_SCENE = 4096
MAX_SCENES = 100_000  # scenes per split


def check_args(args) -> None:
    """What the parser cannot check (its types refuse numbers out of range): the output folder."""
    safe_write.check_output(args.out.rstrip('/') or args.out, '--out', folder=True)


def _prepared_with(out: str):
    """The arguments a complete tree of ours at ``out`` was written with (None if there is none)."""
    marker = osp.join(out, MARKER)
    if not (safe_write.is_ours(out) and osp.isfile(marker)):
        return None
    try:
        with open(marker, encoding='utf-8') as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main(argv=None):
    p = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='data/fashion')
    p.add_argument('--scenes-train', type=int_range(1, MAX_SCENES), default=1000)
    p.add_argument('--scenes-val', type=int_range(1, MAX_SCENES), default=200)
    p.add_argument('--scene-size', type=int_range(MIN_SCENE, MAX_SCENE), default=128,
                   help=f'{MIN_SCENE} to {MAX_SCENE} px (items are 28 px scaled up to 2x)')
    p.add_argument('--seed', type=numpy_seed, default=0)
    p.add_argument('--limit', type=positive_int, default=None, help='use only the first N images of each split')
    p.add_argument('--train-limit', type=positive_int, default=None, help='use only the first N training images')
    args = p.parse_args(argv)
    spec = {k: v for k, v in vars(args).items() if k != 'out'}
    out = args.out.rstrip('/') or args.out
    check_args(args)
    if _prepared_with(out) == spec:
        print(f'{out}: already prepared with these arguments')
        return
    source = find_source()
    t = time.time()
    print(f'writing Fashion-MNIST from {source} to {out} ...', flush=True)

    def build(tmp):
        counts = write_classification(osp.join(tmp, 'imagenet'), source, args.limit, args.train_limit)
        print(f'  classification: {counts} images ({time.time() - t:.0f} s)', flush=True)
        scenes = write_scenes(tmp, args.scenes_train, args.scenes_val, args.scene_size, args.seed, source)
        print(f'  scenes: {scenes} ({time.time() - t:.0f} s)', flush=True)
        with open(osp.join(tmp, MARKER), 'w', encoding='utf-8') as f:  # inside the new, not yet visible tree
            f.write(json.dumps(spec))
    safe_write.write_tree(out, build, what='--out')
    print(f'done: {out}')


if __name__ == '__main__':
    run_tool(main)
