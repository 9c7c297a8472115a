"""Image transforms: torchvision transforms v2 built from config dicts, plus what torchvision does not have.

A pipeline in a config is a list of dicts, e.g. ``dict(type='torchvision/RandomResizedCrop', size=224)``;
``type`` names a torchvision ``transforms.v2`` class as ``torchvision/<class>`` (registered below) or one of
the project's own steps:

* :class:`PCALighting`: the paper's AlexNet-style lighting noise (per image, float input).
* :class:`RandomResizedCrop`: torchvision's, plus a reduced-DCT-scale JPEG decode when the crop is much
  larger than the output (the dataset hands it the file, :meth:`RandomResizedCrop.open_jpeg`).
* :class:`Photometric`: the paper's colour jitter, PCA lighting and normalisation as one step whose
  per-image random factors are drawn here, in the loader worker, exactly as ``ColorJitter`` +
  ``PCALighting`` draw them; ``where='device'`` ships the uint8 image with its factors so that the
  model's data preprocessor (:mod:`classification.preprocessor`) applies them batched on the training
  device, ``where='workers'`` applies them here. Both run :func:`apply_photometric`.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from user_errors import ConfigError, UserInputError

from .registry import TRANSFORMS

# torchvision's transforms are registered as 'torchvision/<name>' (mmpretrain's convention): mmcv's Resize,
# CenterCrop, Normalize and Pad, mmdet's RandomCrop, mmpretrain's ColorJitter and RandomResizedCrop take other
# arguments, and an unprefixed name here would shadow them in the 'bagtricks' scope. Our own steps keep theirs.
TORCHVISION_PREFIX = 'torchvision/'
_TORCHVISION = ('RandomHorizontalFlip', 'ColorJitter', 'Resize', 'CenterCrop', 'RandomCrop',
                'Normalize', 'ToDtype', 'Grayscale', 'Pad')
for _name in _TORCHVISION:
    TRANSFORMS.register_module(name=TORCHVISION_PREFIX + _name, module=getattr(v2, _name))

# AlexNet's eigen-decomposition of the ImageNet RGB covariance, pixel values in [0, 1]
# (Krizhevsky et al. 2012); columns of the matrix are the eigenvectors.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))


@TRANSFORMS.register_module()
class PCALighting:
    """AlexNet-style lighting noise: add ``eigvec @ (alpha * eigval)`` to every pixel, alpha ~ N(0, alphastd).

    Args:
        alphastd: standard deviation of the coefficients (the paper: 0.1). 0 is the identity.
        value_range: the pixel range of the float input (255 for ``ToDtype(..., scale=False)`` output,
            1 for ``scale=True``); the eigenvalues are given for [0, 1] and scaled to it.
    """

    def __init__(self, alphastd: float = 0.1, value_range: float = 255.0,
                 eigval: Sequence[float] = IMAGENET_EIGVAL, eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC):
        if alphastd < 0:
            raise ValueError(f'PCALighting: alphastd must be >= 0, got {alphastd}')
        self.alphastd = alphastd
        self.eigval = torch.tensor(eigval, dtype=torch.float32) * value_range
        self.eigvec = torch.tensor(eigvec, dtype=torch.float32)
        if self.eigvec.shape != (len(self.eigval), len(self.eigval)):
            raise ValueError(f'PCALighting: eigvec must be {len(self.eigval)}x{len(self.eigval)}, '
                             f'got {tuple(self.eigvec.shape)}')

    def sample(self) -> torch.Tensor | None:
        """The per-pixel RGB offset of one image (None for alphastd 0, which draws no random number)."""
        if self.alphastd == 0:
            return None
        alpha = torch.randn(len(self.eigval)) * self.alphastd
        return self.eigvec @ (alpha * self.eigval)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if not torch.is_floating_point(img):
            raise TypeError(f'PCALighting expects a float image, got {img.dtype}; put '
                            f"dict(type='torchvision/ToDtype', dtype='float32') before it")
        if img.shape[-3] != len(self.eigval):
            raise ValueError(f'PCALighting expects {len(self.eigval)} channels, got image of shape {tuple(img.shape)}')
        rgb = self.sample()
        return img if rgb is None else img + rgb.to(img.dtype).view(-1, 1, 1)

    def __repr__(self):
        return f'PCALighting(alphastd={self.alphastd})'


# ---------------------------------------------------------------------------------------------------
# decode less: RandomResizedCrop that decodes a JPEG at a reduced DCT scale when the crop allows it
# ---------------------------------------------------------------------------------------------------
class JpegFile:
    """A JPEG file whose header has been read (size, mode) but whose pixels have not been decoded."""

    def __init__(self, path: str, data: bytes, image, mode: ImageReadMode):
        # data: the file's bytes (read once); image: a PIL JpegImageFile on them, header parsed only
        self.path, self.data, self.image, self.mode = path, data, image, mode
        self.width, self.height = image.size
        self.channels = 3 if mode == ImageReadMode.RGB else 1


# the torchvision interpolations PIL resamples the same way (antialiased when downscaling)
_PIL_MODES = {v2.InterpolationMode.BILINEAR: 2, v2.InterpolationMode.BICUBIC: 3}  # PIL.Image.BILINEAR, BICUBIC
_PIL_MODES.update({m.value: p for m, p in list(_PIL_MODES.items())})  # v2 keeps the mode as given


class UnreadableImageError(UserInputError):
    """An image file that does not decode (the dataset names the file)."""


def _unreadable(path: str, err: Exception) -> Exception:
    first = str(err).splitlines()[0] if str(err) else repr(err)
    return UnreadableImageError(f'{path}: cannot decode image ({first})')


@TRANSFORMS.register_module(name=TORCHVISION_PREFIX + 'RandomResizedCrop')  # torchvision's, decoding less
class RandomResizedCrop(v2.RandomResizedCrop):
    """``v2.RandomResizedCrop`` that also accepts a not-yet-decoded JPEG (:class:`JpegFile`).

    The crop box is drawn on the full-size coordinates by torchvision's own ``make_params`` (so boxes,
    output sizes and the random numbers drawn are those of ``v2.RandomResizedCrop`` on the decoded
    image). Then the JPEG is decoded at the smallest DCT scale 1/s (s in 1, 4, 8; PIL's ``draft``,
    libjpeg's scaled IDCT) at which the crop still has at least the output's pixels in both directions,
    and PIL resamples the box divided by s (fractional, so no rounding of the box) to the output size,
    antialiased like torchvision's ``antialias=True``. Measured on 400-500 px photos against the full-size
    decode with the same box: 1.6-1.9 grey levels mean absolute error (tests/test_input_pipeline.py).
    With s = 1 the image is decoded by ``torchvision.io.decode_jpeg`` and the result is torchvision's.
    Tensors and PIL images are passed to torchvision unchanged.

    Args:
        reduced_decode: False decodes every JPEG at full size (then identical to ``v2.RandomResizedCrop``).
        Other arguments: those of ``v2.RandomResizedCrop``.
    """

    def __init__(self, *args, reduced_decode: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.reduced_decode = reduced_decode

    # The dataset asks the first pipeline step for this (ImageNetFolder): JPEGs come as JpegFile.
    @staticmethod
    def open_jpeg(path: str, mode: ImageReadMode) -> JpegFile | None:
        """The file as a :class:`JpegFile` if it is a baseline/progressive JPEG in a mode PIL decodes as the
        dataset would (RGB or grayscale); None for anything else (the dataset then decodes it itself)."""
        from PIL import Image, JpegImagePlugin
        try:
            with open(path, 'rb') as f:
                data = f.read()
            image = Image.open(io.BytesIO(data))
        except (OSError, ValueError, SyntaxError):
            return None  # not for us: the dataset's own decoder reports it
        if not isinstance(image, JpegImagePlugin.JpegImageFile) or image.mode not in ('RGB', 'L') \
                or len(image.tile) != 1:
            return None  # CMYK, multi-scan oddities, MPO: torchvision's decode_image converts those
        return JpegFile(path, data, image, mode)

    def scale_for(self, height: int, width: int) -> int:
        """The DCT scale denominator s for a crop of ``height`` x ``width`` full-size pixels."""
        if not self.reduced_decode or not self.antialias or self.interpolation not in _PIL_MODES:
            return 1
        out_h, out_w = self.size
        # not 1/2: measured slower than decode_jpeg + torchvision's resize (Huffman decoding, which no DCT
        # scale reduces, dominates; PIL's path costs more): 1.14 vs 1.03 ms a 400-500 px photo, 1/4 0.88 ms
        for s in (8, 4):
            if height >= s * out_h and width >= s * out_w:
                return s
        return 1

    def decode_crop(self, jpeg: JpegFile, params: dict) -> torch.Tensor:
        """Decode ``jpeg`` at the scale the crop box ``params`` (full-size coordinates) allows, crop, resize."""
        top, left, h, w = params['top'], params['left'], params['height'], params['width']
        s = self.scale_for(h, w)
        want = 'RGB' if jpeg.channels == 3 else 'L'
        try:
            if s == 1:
                img = decode_jpeg(torch.frombuffer(bytearray(jpeg.data), dtype=torch.uint8), mode=jpeg.mode)
                return F.resized_crop(img, top, left, h, w, self.size, interpolation=self.interpolation,
                                      antialias=self.antialias)
            pil = jpeg.image
            # PIL picks the largest power of two with size // scale >= the request: ask for size // s
            pil.draft(want, (jpeg.width // s, jpeg.height // s))
            pil.load()
            if pil.size != (-(-jpeg.width // s), -(-jpeg.height // s)):  # libjpeg: ceil(size / s)
                raise RuntimeError(f'PIL decoded {pil.size} at DCT scale 1/{s} of {jpeg.width}x{jpeg.height}')
            if pil.mode != want:  # a grey JPEG read as RGB
                pil = pil.convert(want)
            # the box in reduced pixels is the full-size box / s exactly (PIL resamples a fractional box);
            # PIL's bilinear/bicubic downscaling is antialiased as torchvision's antialias=True
            out = pil.resize((self.size[1], self.size[0]), _PIL_MODES[self.interpolation],
                             box=(left / s, top / s, (left + w) / s, (top + h) / s))
            arr = np.array(out)
        except (RuntimeError, ValueError, OSError, SyntaxError) as e:
            raise _unreadable(jpeg.path, e) from e
        return torch.from_numpy(arr).permute(2, 0, 1) if arr.ndim == 3 else torch.from_numpy(arr)[None]

    def make_params_for(self, jpeg: JpegFile) -> dict:
        # torchvision's own sampling, on a stand-in of the full image's shape (no pixels)
        shape_only = torch.empty((1, 1, 1), dtype=torch.uint8).expand(jpeg.channels, jpeg.height, jpeg.width)
        return self.make_params([shape_only])

    def forward(self, *inputs):
        if len(inputs) == 1 and isinstance(inputs[0], JpegFile):
            return self.decode_crop(inputs[0], self.make_params_for(inputs[0]))
        return super().forward(*inputs)


# ---------------------------------------------------------------------------------------------------
# the photometric part of the paper's augmentation, batched
# ---------------------------------------------------------------------------------------------------
# per-image parameter vector: 3 op ids (0 brightness, 1 contrast, 2 saturation) in application order,
# the 3 factors (brightness, contrast, saturation), then per-channel scale and bias of
# x * scale + bias = (x + lighting offset - mean) / std
NUM_PARAMS = 12
WHERE = ('auto', 'workers', 'device')
# 'auto' off an accelerator: tools/benchmark_data.py on this 2-core CPU (224 px, one thread) measured the
# whole pipeline at 634-658 img/s per core with the step in the preprocessor, 539-570 with it in the workers
# (the step 0.11-0.20 vs 0.34-0.48 ms an image: float32 batches to collate, per-call overhead)
AUTO_ON_CPU = 'device'


def resolve_where(where: str) -> str:
    """'workers' or 'device' for a ``where`` of 'auto' / 'workers' / 'device' on this machine."""
    if where not in WHERE:
        raise ValueError(f"Photometric: where must be one of {', '.join(map(repr, WHERE))}, got {where!r}")
    if where != 'auto':
        return where
    from mmengine.device import get_device  # the device the Runner puts the model on
    return 'device' if get_device() != 'cpu' else AUTO_ON_CPU


def _grey(x: torch.Tensor) -> torch.Tensor:
    """(..., 1, H, W) luma with torchvision's weights and summation order (a 1-channel image is its own)."""
    if x.shape[-3] == 1:
        return x
    return x[..., 0:1, :, :].mul(0.2989).add_(x[..., 1:2, :, :], alpha=0.587).add_(x[..., 2:3, :, :], alpha=0.114)


def apply_photometric(images: torch.Tensor, params: torch.Tensor, batched: bool | None = None) -> torch.Tensor:
    """Colour jitter, lighting and normalisation of a batch, each image with its own parameters.

    ``images``: (N, C, H, W), uint8 or float on the 0-255 scale; ``params``: (N, NUM_PARAMS) as made by
    :meth:`Photometric.sample`. Returns float32. Semantics: torchvision's ``ColorJitter`` on a float image
    (each op ``clamp(f * x + (1 - f) * ref, 0, 255)`` with ref 0 for brightness, the mean of the grey image
    for contrast, the grey image for saturation, in the image's own order), computed in float without
    the uint8 rounding between ops, then ``x * scale + bias`` per channel (lighting and normalisation).

    ``batched`` (default: on any device but the CPU): whole-batch tensor ops with per-image factors, no
    host sync. On the CPU the images go one at a time (each fits in cache, a batch does not: measured
    faster), with only the ops each image needs.
    """
    n, c = images.shape[:2]
    batched = images.device.type != 'cpu' if batched is None else batched
    if not batched:
        out = torch.empty(images.shape, dtype=torch.float32)
        host = params.detach().to('cpu', torch.float32)
        for i in range(n):
            x = out[i].copy_(images[i])
            p = host[i].tolist()
            for op in p[:3]:
                f = p[3 + int(op)]
                if f == 1:
                    continue
                if op == 0:
                    x.mul_(f)
                elif op == 1:
                    mean = float(_grey(x).mean())  # of the image before this op
                    x.mul_(f).add_(mean * (1 - f))
                else:
                    grey = _grey(x)
                    x.mul_(f).add_(grey, alpha=1 - f)
                x.clamp_(0, 255)
            x.mul_(host[i, 6:6 + c].view(c, 1, 1)).add_(host[i, 9:9 + c].view(c, 1, 1))
        return out
    x = images.float() if images.dtype != torch.float32 else images.clone()
    params = params.to(device=x.device, dtype=torch.float32, non_blocking=True)
    order, factors = params[:, :3].long(), params[:, 3:6]
    view = (n, 1, 1, 1)
    for k in range(3):
        op = order[:, k]
        f = factors.gather(1, op[:, None]).view(view)
        grey = _grey(x)  # a new tensor for 3 channels, x itself for 1
        mean = grey.mean(dim=(1, 2, 3), keepdim=True)
        is_contrast = (op == 1).view(view).to(x.dtype)
        is_saturation = (op == 2).view(view).to(x.dtype)
        ref = (grey.mul_(is_saturation) if c == 3 else grey * is_saturation).add_(mean * is_contrast)
        x = x.mul_(f).add_(ref.mul_(1 - f)).clamp_(0, 255)
    scale, bias = params[:, 6:6 + c].view(n, c, 1, 1), params[:, 9:9 + c].view(n, c, 1, 1)
    return x.mul_(scale).add_(bias)


@TRANSFORMS.register_module()
class Photometric:
    """The paper's photometric augmentation and the normalisation, as one pipeline step (the last).

    Draws, per image and in this order, what ``ColorJitter(brightness, contrast, saturation)`` then
    ``PCALighting(lighting)`` would draw (the same calls on the same random stream: a seeded run gets
    the same factors as the per-transform pipeline), then:

    * ``where='device'``: returns ``dict(image=uint8 image, params=float32 vector)``; the model's data
      preprocessor (:class:`classification.preprocessor.BagDataPreprocessor`) applies them batched on the
      device the model trains on, after the uint8 batch is copied there.
    * ``where='workers'``: applies them here, per image, and returns the float normalised image.
    * ``where='auto'``: 'device' when the model trains on an accelerator, else :data:`AUTO_ON_CPU`.

    Args:
        brightness, contrast, saturation: ``ColorJitter``'s (factor uniform in [max(0, 1 - v), 1 + v]);
            0 leaves it out. No hue (the paper has none).
        lighting: ``PCALighting``'s alphastd (0: none).
        mean, std: the normalisation, on the 0-255 scale.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 lighting: float = 0.0, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0), where: str = 'auto',
                 eigval: Sequence[float] = IMAGENET_EIGVAL, eigvec: Sequence[Sequence[float]] = IMAGENET_EIGVEC):
        self.where = where
        self.resolved = resolve_where(where)
        self.jitter = v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation)
        self.lighting = PCALighting(lighting, value_range=255.0, eigval=eigval, eigvec=eigvec)
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        if self.mean.shape != (3,) and self.mean.numel() != 1 or self.mean.shape != self.std.shape:
            raise ValueError(f'Photometric: mean and std must be 1 or 3 values each, got {mean} and {std}')
        if bool((self.std <= 0).any()):
            raise ValueError(f'Photometric: std must be > 0, got {std}')
        self.has_jitter = any(getattr(self.jitter, k) is not None for k in ('brightness', 'contrast', 'saturation'))

    def sample(self) -> torch.Tensor:
        """One image's parameter vector (NUM_PARAMS floats)."""
        out = torch.empty(NUM_PARAMS)
        if self.has_jitter:  # no ColorJitter in the pipeline draws no random number
            p = self.jitter.make_params([])
            order = [i for i in p['fn_idx'].tolist() if i < 3]
            factors = [1.0 if p[k] is None else p[k] for k in ('brightness_factor', 'contrast_factor',
                                                                'saturation_factor')]
        else:
            order, factors = [0, 1, 2], [1.0, 1.0, 1.0]
        offset = self.lighting.sample()
        offset = torch.zeros(3) if offset is None else offset
        mean, std = self.mean.expand(3), self.std.expand(3)
        out[:3] = torch.tensor(order, dtype=torch.float32)
        out[3:6] = torch.tensor(factors, dtype=torch.float32)
        out[6:9] = 1 / std
        out[9:12] = (offset - mean) / std
        return out

    def __call__(self, img: torch.Tensor):
        if not isinstance(img, torch.Tensor) or img.ndim != 3 or img.shape[0] not in (1, 3):
            raise TypeError(f'Photometric expects a CHW image tensor with 1 or 3 channels, got '
                            f'{type(img).__name__} {tuple(getattr(img, "shape", ()))}')
        if self.lighting.alphastd and img.shape[0] != 3:
            raise ValueError(f'Photometric: lighting needs 3 channels, got image of shape {tuple(img.shape)}')
        params = self.sample()
        if self.resolved == 'device':
            return dict(image=img, params=params)
        return apply_photometric(img[None], params[None])[0]

    def __repr__(self):
        j = self.jitter
        return (f'Photometric(brightness={j.brightness}, contrast={j.contrast}, saturation={j.saturation}, '
                f'lighting={self.lighting.alphastd}, where={self.where!r} -> {self.resolved!r})')


def build_pipeline(steps: Sequence[dict] | None) -> v2.Compose:
    """Build a ``v2.Compose`` from config dicts (``dtype`` may be given as a string, e.g. 'float32')."""
    transforms = []
    for step in steps or ():
        if not isinstance(step, dict) or 'type' not in step:
            raise ValueError(f"pipeline steps must be dicts with a 'type', got {step!r}")
        step = dict(step)
        if step['type'] in (*_TORCHVISION, 'RandomResizedCrop'):  # the name before torchvision/ (or mmcv's class)
            raise ConfigError(f"pipeline step {step['type']!r}: torchvision's transform is "
                             f"'{TORCHVISION_PREFIX}{step['type']}' (the unprefixed name is mmcv's or mmpretrain's, "
                             'which take other arguments and work on dicts, not on image tensors)')
        if isinstance(step.get('dtype'), str):
            dtype = getattr(torch, step['dtype'], None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"pipeline step {step['type']}: unknown dtype {step['dtype']!r}")
            step['dtype'] = dtype
        transforms.append(TRANSFORMS.build(step))
    if any(isinstance(t, Photometric) for t in transforms[:-1]):
        raise ValueError('pipeline: Photometric must be the last step (with where=device it hands the uint8 '
                         'image and its factors to the data preprocessor)')
    return v2.Compose(transforms)
