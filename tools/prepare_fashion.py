"""Write Fashion-MNIST in the real formats the three tasks read (reproducible, seeded).

    python tools/prepare_fashion.py [--out data/fashion] [--scenes-train 1000] [--scenes-val 200]

out/imagenet/{train,val}/<class>/*.png        classification (ImageNet folder layout)
out/VOCdevkit/VOC2007/...                     detection scenes (JPEG + VOC XML, trainval / test)
out/ADEChallengeData2016/...                  the same scenes for segmentation (JPEG + PNG labels)
An existing complete output is kept (a marker file records the arguments it was written with).
"""
import argparse
import json
import os
import os.path as osp
import shutil
import time

from experiments.fashion import find_source, write_classification, write_scenes


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
    marker = osp.join(args.out, 'COMPLETE.json')
    if osp.isfile(marker) and json.load(open(marker)) == spec:
        print(f'{args.out}: already prepared with these arguments')
        return
    source = find_source()
    tmp = args.out.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    t = time.time()
    print(f'writing Fashion-MNIST from {source} to {args.out} ...', flush=True)
    counts = write_classification(osp.join(tmp, 'imagenet'), source, args.limit, args.train_limit)
    print(f'  classification: {counts} images ({time.time() - t:.0f} s)', flush=True)
    scenes = write_scenes(tmp, args.scenes_train, args.scenes_val, args.scene_size, args.seed, source)
    print(f'  scenes: {scenes} ({time.time() - t:.0f} s)', flush=True)
    with open(osp.join(tmp, 'COMPLETE.json'), 'w') as f:
        json.dump(spec, f)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)  # complete or absent: never half-written
    print(f'done: {args.out}')


if __name__ == '__main__':
    main()
