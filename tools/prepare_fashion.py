"""Write Fashion-MNIST in the real formats the three tasks read (reproducible, seeded).

    python tools/prepare_fashion.py [--out data/fashion] [--scenes-train 1000] [--scenes-val 200]

out/imagenet/{train,val}/<class>/*.png        classification (ImageNet folder layout)
out/VOCdevkit/VOC2007/...                     detection scenes (JPEG + VOC XML, trainval / test)
out/ADEChallengeData2016/...                  the same scenes for segmentation (JPEG + PNG labels)
An existing complete output is kept (a marker file records the arguments it was written with); one
written with other arguments is replaced. A folder this tool did not write (no marker) is never
deleted or written into: that is an error, before any work.
"""
import argparse
import json
import os
import os.path as osp
import shutil
import time

from engine.guard import run_tool
from experiments.fashion import find_source, write_classification, write_scenes
from user_errors import UserInputError

MARKER = 'COMPLETE.json'
PARTIAL_MARKER = 'PARTIAL.json'  # written first into OUT.partial, so only our own half-written tree is removed
MIN_SCENE = 56  # scene items are Fashion-MNIST's 28 px scaled up to 2x
MAX_SCENE = 4096


class PrepareError(UserInputError):
    """An argument out of range, or an output path that holds something this tool did not write."""


def _ours(folder: str, marker: str) -> bool:
    return osp.isfile(osp.join(folder, marker))


def check_args(args) -> None:
    ranges = (('--scenes-train', args.scenes_train, 1, None), ('--scenes-val', args.scenes_val, 1, None),
              ('--scene-size', args.scene_size, MIN_SCENE, MAX_SCENE), ('--seed', args.seed, 0, 2 ** 32 - 1),
              ('--limit', args.limit, 1, None), ('--train-limit', args.train_limit, 1, None))
    for flag, value, lo, hi in ranges:
        if value is not None and (value < lo or (hi is not None and value > hi)):
            expected = f'{lo}..{hi}' if hi is not None else f'>= {lo}'
            why = ' (items are 28 px scaled up to 2x)' if flag == '--scene-size' else ''
            raise PrepareError(f'{flag} {value}: expected an integer {expected}{why}')
    out = args.out.rstrip('/') or args.out
    for path, what in ((out, '--out'), (out + '.partial', 'the temporary folder')):
        if osp.lexists(path) and not osp.isdir(path):
            raise PrepareError(f'{what} {path} exists and is not a directory; choose another --out')
    if osp.isdir(out) and os.listdir(out) and not _ours(out, MARKER):
        raise PrepareError(f'--out {out} exists and was not written by this tool (no {MARKER}); it is kept: '
                           'choose another --out or remove it yourself')
    tmp = out + '.partial'
    if osp.isdir(tmp) and os.listdir(tmp) and not (_ours(tmp, PARTIAL_MARKER) or _ours(tmp, MARKER)):
        raise PrepareError(f'{tmp} exists and was not written by this tool (no {PARTIAL_MARKER}); it is kept: '
                           'choose another --out or remove it yourself')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='data/fashion')
    p.add_argument('--scenes-train', type=int, default=1000)
    p.add_argument('--scenes-val', type=int, default=200)
    p.add_argument('--scene-size', type=int, default=128)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--limit', type=int, default=None, help='use only the first N images of each split')
    p.add_argument('--train-limit', type=int, default=None, help='use only the first N training images')
    args = p.parse_args(argv)
    spec = {k: v for k, v in vars(args).items() if k != 'out'}
    out = args.out.rstrip('/') or args.out
    marker = osp.join(out, MARKER)
    check_args(args)
    if osp.isfile(marker):
        try:
            done = json.load(open(marker))
        except ValueError:
            done = None
        if done == spec:
            print(f'{out}: already prepared with these arguments')
            return
    source = find_source()
    tmp = out + '.partial'
    if osp.isdir(tmp):
        shutil.rmtree(tmp)  # our own (checked above): an interrupted earlier run
    os.makedirs(tmp)
    with open(osp.join(tmp, PARTIAL_MARKER), 'w') as f:
        json.dump(spec, f)
    t = time.time()
    print(f'writing Fashion-MNIST from {source} to {out} ...', flush=True)
    try:
        counts = write_classification(osp.join(tmp, 'imagenet'), source, args.limit, args.train_limit)
        print(f'  classification: {counts} images ({time.time() - t:.0f} s)', flush=True)
        scenes = write_scenes(tmp, args.scenes_train, args.scenes_val, args.scene_size, args.seed, source)
        print(f'  scenes: {scenes} ({time.time() - t:.0f} s)', flush=True)
        with open(osp.join(tmp, MARKER), 'w') as f:
            json.dump(spec, f)
        os.remove(osp.join(tmp, PARTIAL_MARKER))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never a half-written tree left behind
        raise
    if osp.isdir(out):
        if os.listdir(out) and not _ours(out, MARKER):  # appeared while we wrote
            raise PrepareError(f'--out {out} was created by something else meanwhile; the new data is in {tmp}')
        shutil.rmtree(out)  # our own earlier output, written with other arguments
    os.replace(tmp, out)  # complete or absent: never half-written
    print(f'done: {out}')


if __name__ == '__main__':
    run_tool(main)
