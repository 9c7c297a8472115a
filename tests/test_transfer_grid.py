"""The transfer grid: runs pretrain -> det -> seg per variant, skips finished cells, continues the rest."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from experiments import fashion
from experiments.grid import markdown_table, summarize

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_summary_and_table_numbers():
    rows = {'d_cosine': [dict(top1=90.0, mAP=50.0, pixAcc=80.0, mIoU=40.0),
                         dict(top1=92.0, mAP=54.0, pixAcc=82.0, mIoU=44.0)]}
    s = summarize(rows)
    assert s['d_cosine']['top1'] == (91.0, pytest.approx(2 ** 0.5), 2)
    table = markdown_table(s)
    assert '| + cosine | 91.00 ± 1.41 | 52.00 ± 2.83 | 81.00 ± 1.41 | 42.00 ± 2.83 | 77.91 | 79.23 | 79.25 | 39.33 |' \
        in table


@pytest.mark.skipif(not osp.isdir(fashion.DEBIAN_DIR), reason='dataset-fashion-mnist not installed')
def test_two_variant_grid_skips_done_cells_and_continues(tmp_path):
    data, work, out = tmp_path / 'data', tmp_path / 'work', tmp_path / 'out'
    subprocess.run([sys.executable, 'tools/prepare_fashion.py', '--out', str(data), '--limit', '300',
                    '--scenes-train', '16', '--scenes-val', '8'], check=True, cwd=REPO, capture_output=True)
    roots = {'cls': f'{data}/imagenet', 'det': f'{data}/VOCdevkit/', 'seg': f'{data}/ADEChallengeData2016'}
    short = ['train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3']
    cmd = [sys.executable, 'tools/transfer_grid.py', '--variants', 'b_standard', 'd_efficient',
           '--work-dir', str(work), '--out', str(out)]
    for step in ('cls', 'det', 'seg'):
        cmd += [f'--{step}-options'] + [f'{s}_dataloader.dataset.data_root={roots[step]}'
                                         for s in ('train', 'val', 'test')]
        cmd += ['train_dataloader.batch_size=32'] if step == 'cls' else short
    env = dict(os.environ, OMP_NUM_THREADS='1')

    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.stdout.count('pretraining configs/cls/fashion_') == 2
    cells = {(v, s): json.load(open(work / v / 'seed0' / s / 'result.json'))
             for v in ('b_standard', 'd_efficient') for s in ('cls', 'det', 'seg')}
    assert all(0 <= c['top1'] <= 100 for (v, s), c in cells.items() if s == 'cls')
    # the variant and weights of each pretraining reached its detector
    det_log = json.load(open(work / 'b_standard' / 'seed0' / 'det' / 'val_results.json'))
    assert det_log['backbone']['variant'] == 'B'
    assert det_log['backbone']['pretrained'].endswith('b_standard/seed0/cls/backbone.pth')
    table = (out / 'table.md').read_text()
    assert '| B-standard |' in table and '| D-efficient |' in table
    assert (out / 'chart.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    # interrupted after training but before the detection cell was recorded: it continues from its checkpoint
    det_cell = work / 'd_efficient' / 'seed0' / 'det'
    os.remove(det_cell / 'result.json')
    seg_mtime = os.path.getmtime(work / 'd_efficient' / 'seed0' / 'seg' / 'result.json')
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'pretraining configs' not in second.stdout  # every pretraining was skipped
    assert second.stdout.count('done before') == 5
    assert json.load(open(det_cell / 'result.json'))['mAP'] == pytest.approx(cells[('d_efficient', 'det')]['mAP'])
    assert '--resume' in (det_cell / 'steps.log').read_text().split('$ ')[-1].splitlines()[0]
    assert os.path.getmtime(work / 'd_efficient' / 'seed0' / 'seg' / 'result.json') == seg_mtime
