"""tools/plot_lr.py: the lr schedule of pretraining configs as a PNG.

The TensorBoard side (event files with lr, loss and top-1 that equal the schedule replay) is checked on
the integration run in test_cls_pretrain.py, so no second training run is needed here."""
import os.path as osp

import numpy as np
from PIL import Image

from cls_helpers import REPO, run_tool

PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def test_plot_lr_writes_a_png(tmp_path):
    out = tmp_path / 'lr.png'
    configs = [osp.join(REPO, 'configs', 'cls', name) for name in
               ('resnet50_baseline.py', 'resnet50_bs1024_warmup.py', 'resnet50d_cosine.py')]
    proc = run_tool('plot_lr.py', *configs, '--iters-per-epoch', '20', '--world-size', '8', '--out', str(out))
    assert f'wrote {out}' in proc.stdout
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 20_000  # measured 39,299 bytes; the same axes without curves: 12,198
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.size == (800, 400)  # figsize 8 x 4 inches at 100 dpi
        pixels = np.asarray(img.convert('RGB')).astype(int)
    # three curves in matplotlib's first three colours (C0 blue, C1 orange, C2 green) are drawn
    for colour in ((31, 119, 180), (255, 127, 14), (44, 160, 44)):
        assert (np.abs(pixels - colour).sum(axis=2) < 30).sum() > 300, colour  # measured 731, 1308, 1298
