"""Input-pipeline throughput per CPU core: the project's split pipeline next to stock torchvision v2.

    python tools/benchmark_data.py [--data DIR] [--images 64] [--batch 32] [--rounds 5] [--size 224]
        [--cores 2,16] [--device cpu|cuda] [--out results.json]

Every path turns the same JPEG files into one training batch per ``--batch`` images, with the paper's
augmentation (random-resized crop, flip, colour jitter 0.4, PCA lighting 0.1, normalisation), in this
process on one thread (``torch.set_num_threads(1)``: a loader worker's share of the machine), including
``default_collate``:

* ``stock v2, PIL decode``: ``PIL.Image.open().convert('RGB')``, then torchvision v2 on the PIL image
  (``RandomResizedCrop``, ``RandomHorizontalFlip``, ``ColorJitter``), ``PILToTensor``, ``ToDtype``, PCA
  lighting, ``Normalize`` (torchvision's reference-recipe order), float32 batches.
* ``stock v2, decode_jpeg``: ``torchvision.io.decode_jpeg`` then the same v2 transforms on the tensor.
* ``today``: ``ImageNetFolder`` with the per-transform pipeline the configs had before the split
  (decode_image, RandomResizedCrop, flip, ColorJitter, ToDtype, PCALighting, Normalize), float32 batches.
* ``worker side``: ``ImageNetFolder`` with the configs' pipeline (``RandomResizedCrop`` with reduced-DCT
  decode, flip, ``Photometric(where='device')``): what a loader worker does now; uint8 batches.
* ``whole, device mode``: the worker side plus ``BagDataPreprocessor`` on the batch (the photometric
  step batched), here on the CPU.
* ``whole, workers mode``: ``Photometric(where='workers')``: the same ops per image in the worker.
* ``--device cuda`` adds ``nvjpeg``: files read on the CPU, decoded as one batch on the GPU
  (``decode_jpeg(list, device='cuda')``), crop, flip and the photometric step there; and the GPU's
  training img/s of ResNet-50-D (mixed precision, channels-last) for the projection.

Rounds run every path once over the same files (the order rotates per round; each path reseeds torch
so all draw the same crops), so all paths see the same machine load; img/s per path is the median over
rounds, ratios are medians of per-round ratios. Projected img/s for N cores = N x per-core img/s (the
loader workers are independent processes; the main process and the loader's own overhead are not in it).
Without ``--data`` the files are real photos from Debian's labelme-examples at ImageNet's typical size
(experiments/photos.py: longer side 400-500 px, JPEG quality 90).
"""
from __future__ import annotations

import argparse
import os.path as osp
import statistics
import sys
import tempfile
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
from tool_boundary import ToolArgumentParser, int_range, run_tool  # noqa: E402  (the repository on the path first)
MEAN = [123.68, 116.779, 103.939]
STD = [58.393, 57.12, 57.375]


def parse_args(argv=None) -> argparse.Namespace:
    parser = ToolArgumentParser(description='Input pipeline img/s per core: worker side and whole pipeline '
                                                 'vs stock torchvision v2, interleaved rounds')
    parser.add_argument('--data', help='an ImageNet-style folder (its train/ split); default: generated photos')
    parser.add_argument('--images', type=int_range(1, 100_000), default=64, help='images per path per round')
    parser.add_argument('--batch', type=int_range(1, 1024), default=32)
    parser.add_argument('--rounds', type=int_range(1, 1000), default=5)
    parser.add_argument('--size', type=int_range(1, 1024), default=224, help='the random-resized crop size')
    parser.add_argument('--cores', default='2,16', help='comma list of core counts to project to')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--out', help='also write the figures to this JSON file')
    args = parser.parse_args(argv)
    try:
        args.core_counts = [int(c) for c in args.cores.split(',')]
    except ValueError:
        parser.error(f'--cores: expected a comma list of integers, got {args.cores!r}')
    if min(args.core_counts) < 1:
        parser.error(f'--cores: core counts must be >= 1, got {args.cores!r}')
    if args.data and not osp.isdir(osp.join(args.data, 'train')):
        parser.error(f'--data: no folder {osp.join(args.data, "train")}')
    if args.out and not osp.isdir(osp.dirname(osp.abspath(args.out))):
        parser.error(f'--out: no folder {osp.dirname(osp.abspath(args.out))}')
    return args


def paper_steps(size: int, where: str | None) -> list[dict]:
    """The configs' train pipeline at ``size``: split (``where``) or per transform (None: before the split)."""
    crop = dict(type='torchvision/RandomResizedCrop', size=size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                antialias=True)
    flip = dict(type='torchvision/RandomHorizontalFlip', p=0.5)
    if where is None:
        return [crop, flip, dict(type='torchvision/ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
                dict(type='torchvision/ToDtype', dtype='float32', scale=False), dict(type='PCALighting', alphastd=0.1),
                dict(type='torchvision/Normalize', mean=MEAN, std=STD)]
    return [crop, flip, dict(type='Photometric', brightness=0.4, contrast=0.4, saturation=0.4, lighting=0.1,
                             mean=MEAN, std=STD, where=where)]


def build_paths(args, root: str) -> dict:
    import torch
    from mmengine.dataset import default_collate
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms import v2

    from classification import ImageNetFolder, PCALighting
    from classification.preprocessor import BagDataPreprocessor

    folder = ImageNetFolder(root, 'train', pipeline=paper_steps(args.size, 'device'))
    files = [p for p, _ in folder.samples][:args.images]
    if len(files) < args.images:
        raise ValueError(f'{root}/train holds {len(files)} images, fewer than --images {args.images}')
    aug = [v2.RandomResizedCrop(args.size, antialias=True), v2.RandomHorizontalFlip(), v2.ColorJitter(0.4, 0.4, 0.4)]
    tail = [v2.ToDtype(torch.float32, scale=False), PCALighting(0.1), v2.Normalize(MEAN, STD)]
    stock_pil = v2.Compose(aug + [v2.PILToTensor()] + tail)
    stock_tensor = v2.Compose(aug + tail)

    def batches(make_item):
        out = None
        for start in range(0, len(files), args.batch):
            out = default_collate([make_item(i) for i in range(start, min(start + args.batch, len(files)))])
        return out

    def stock(transform, decode):
        return lambda: batches(lambda i: dict(inputs=transform(decode(files[i])), data_samples=0))

    def dataset(where, reduced=True):
        steps = paper_steps(args.size, where)
        steps[0]['reduced_decode'] = reduced
        ds = ImageNetFolder(root, 'train', pipeline=steps)
        if where is None:  # as before the split: the dataset decodes (decode_image), v2's crop on the tensor
            ds._open_jpeg = None
        index = {p: i for i, (p, _) in enumerate(ds.samples)}
        order = [index[f] for f in files]
        return ds, order

    preprocessor = BagDataPreprocessor()
    paths = {
        'stock v2, PIL decode': stock(stock_pil, lambda f: Image.open(f).convert('RGB')),
        'stock v2, decode_jpeg': stock(stock_tensor, lambda f: decode_jpeg(read_file(f), mode=ImageReadMode.RGB)),
    }
    for name, where in (('today', None), ('worker side', 'device'), ('whole, workers mode', 'workers')):
        ds, order = dataset(where)
        if name == 'worker side':
            paths[name] = (lambda ds=ds, order=order: batches(lambda i: ds[order[i]]))
            paths['whole, device mode'] = (lambda ds=ds, order=order:
                                           preprocessor(batches(lambda i: ds[order[i]]), True))
        else:
            paths[name] = (lambda ds=ds, order=order: preprocessor(batches(lambda i: ds[order[i]]), True))
    ds_full, order_full = dataset('device', reduced=False)
    paths['worker side, full-size decode'] = lambda: batches(lambda i: ds_full[order_full[i]])
    return dict(paths=paths, files=files)


def reduced_fraction(args, files) -> float:
    """The share of crops (seeded as the rounds are) that the worker side decodes at a reduced DCT scale."""
    import torch

    from classification.transforms import RandomResizedCrop
    from torchvision.io import ImageReadMode
    crop = RandomResizedCrop(args.size, scale=(0.08, 1.0), antialias=True)
    torch.manual_seed(0)
    n = 0
    for f in files:
        jpeg = crop.open_jpeg(f, ImageReadMode.RGB)
        p = crop.make_params_for(jpeg)
        jpeg.image.close()
        n += crop.scale_for(p['height'], p['width']) > 1
    return n / len(files)


def cuda_figures(args, files) -> dict:
    """nvjpeg batch decode + crop + photometric on the GPU, and the GPU's ResNet-50-D training img/s."""
    import torch
    from mmengine.config import Config
    from torchvision.io import read_file

    from backbones.registry import MODELS
    from classification.gpu_decode import decode_crop_batch_cuda
    from classification.transforms import NUM_PARAMS, Photometric, RandomResizedCrop, apply_photometric
    if not torch.cuda.is_available():
        raise ValueError('--device cuda: torch.cuda.is_available() is False on this machine')
    crop = RandomResizedCrop(args.size, antialias=True)
    photometric = Photometric(0.4, 0.4, 0.4, 0.1, MEAN, STD, where='device')

    def nvjpeg():
        for start in range(0, len(files), args.batch):
            chunk = files[start:start + args.batch]
            encoded = [read_file(f) for f in chunk]
            images = decode_crop_batch_cuda(encoded, crop)
            params = torch.stack([photometric.sample() for _ in chunk])
            assert params.shape[1] == NUM_PARAMS
            apply_photometric(images, params)
        torch.cuda.synchronize()

    nvjpeg()  # warm-up (nvjpeg handles, kernels)
    times = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        nvjpeg()
        times.append(time.perf_counter() - t0)
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'cls', 'resnet50d_efficient.py'))
    model = MODELS.build(dict(cfg.model, num_classes=1000)).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, fused=True)
    scaler = torch.amp.GradScaler()
    x = torch.randn(128, 3, args.size, args.size, device='cuda')
    y = torch.randint(0, 1000, (128,), device='cuda')
    step_times = []
    for it in range(13):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast('cuda', dtype=torch.float16):
            loss = torch.nn.functional.cross_entropy(model.logits(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        torch.cuda.synchronize()
        if it >= 3:
            step_times.append(time.perf_counter() - t0)
    return {'gpu': torch.cuda.get_device_name(), 'nvjpeg_img_s': len(files) / statistics.median(times),
            'train_img_s': 128 / statistics.median(step_times)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    import torch

    from device_caps import capability_line
    print(capability_line('cpu'), flush=True)  # first line: the CPU the per-core figures hold for
    if args.device == 'cuda' and torch.cuda.is_available():
        print(capability_line('cuda'), flush=True)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            from experiments.photos import make_photo_imagenet
            per_class = -(-args.images // 4)
            root = make_photo_imagenet(osp.join(tmp, 'photos'), num_classes=4, per_class={'train': per_class})
        built = build_paths(args, root)
        paths, files = built['paths'], built['files']
        names = list(paths)
        for name in names:  # warm-up: page cache, allocator, lazy imports
            torch.manual_seed(0)
            paths[name]()
        times = {n: [] for n in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                torch.manual_seed(r)
                t0 = time.perf_counter()
                paths[name]()
                times[name].append(time.perf_counter() - t0)
        fraction = reduced_fraction(args, files)
        cuda = cuda_figures(args, files) if args.device == 'cuda' else None

    ref = 'stock v2, PIL decode'
    rows = {}
    for name in names:
        rows[name] = dict(img_s=len(files) / statistics.median(times[name]),
                          vs_stock_pil=statistics.median(a / b for a, b in zip(times[ref], times[name])),
                          vs_today=statistics.median(a / b for a, b in zip(times['today'], times[name])))
    print(f'{len(files)} JPEGs ({"--data " + args.data if args.data else "labelme photos, longer side 400-500 px"}), '
          f'crop {args.size}, batch {args.batch}, {args.rounds} interleaved rounds, 1 thread; '
          f'{fraction:.0%} of the crops decoded at a reduced DCT scale')
    width = max(map(len, names))
    cores = args.core_counts
    print(f'{"path":<{width}}  img/s/core  x stock PIL  x today  ' + '  '.join(f'{c:>3} cores' for c in cores))
    for name, row in rows.items():
        print(f'{name:<{width}}  {row["img_s"]:10.0f}  {row["vs_stock_pil"]:11.2f}  {row["vs_today"]:7.2f}  '
              + '  '.join(f'{row["img_s"] * c:9.0f}' for c in cores))
    device_cost = 1 / rows['whole, device mode']['img_s'] - 1 / rows['worker side']['img_s']
    workers_cost = 1 / rows['whole, workers mode']['img_s'] - 1 / rows['worker side']['img_s']
    print(f'photometric step per image on this CPU: batched (device mode) {device_cost * 1e3:.3f} ms, '
          f'per image in a worker {workers_cost * 1e3:.3f} ms')
    result = dict(images=len(files), size=args.size, batch=args.batch, rounds=args.rounds, reduced_fraction=fraction,
                  paths=rows, photometric_ms=dict(device_mode_cpu=device_cost * 1e3, workers_mode=workers_cost * 1e3),
                  projected={str(c): {n: r['img_s'] * c for n, r in rows.items()} for c in cores}, cuda=cuda)
    if cuda:
        print(f"{cuda['gpu']}: nvjpeg decode + crop + photometric {cuda['nvjpeg_img_s']:.0f} img/s (main process); "
              f"ResNet-50-D training {cuda['train_img_s']:.0f} img/s; worker side needs "
              f"{cuda['train_img_s'] / rows['worker side']['img_s']:.1f} cores to keep up")
    if args.out:
        import safe_write
        safe_write.write_json(args.out, result, what='--out file')
    return result


if __name__ == '__main__':
    run_tool(main)
