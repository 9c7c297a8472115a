"""The transfer grid: runs pretrain -> det -> seg per variant, skips finished cells, continues the rest."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from engine.results import read_results, results_record
from experiments import fashion
from experiments.grid import beyond_noise, markdown_table, summarize

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def cells(row: str, seed: int, top1: float, mAP: float, pixAcc: float, mIoU: float) -> list[dict]:
    """A row's three cell records for one seed, as the grid writes them."""
    where = dict(row=row, seed=seed, split='val', num_images=1)
    return [results_record('cls', dict(top1=top1, top5=100.0), **where),
            results_record('det', dict(mAP=mAP, AP50=mAP), **where),
            results_record('seg', dict(pixAcc=pixAcc, mIoU=mIoU, mAcc=0.0), **where)]


def test_summary_table_and_beyond_noise_numbers():
    records = (cells('d_cosine', 0, 90.0, 50.0, 80.0, 40.0) + cells('d_cosine', 1, 92.0, 54.0, 82.0, 44.0)
               + cells('d_efficient', 0, 87.0, 52.0, 80.5, 41.0) + cells('d_efficient', 1, 88.0, 52.0, 81.5, 45.0))
    s = summarize(records)
    assert list(s) == ['d_efficient', 'd_cosine']  # the paper's order, whatever the cells' order
    assert s['d_cosine']['top1'] == (91.0, pytest.approx(2 ** 0.5), 2)
    # top-1: +3.5 against D-efficient (87.5 +- 0.71); SE = sqrt(2/2 + 0.5/2) = 1.118, 2 SE = 2.236: beyond
    diff, se = beyond_noise(s, 'd_cosine', 'top1')
    assert diff == pytest.approx(3.5) and se == pytest.approx(1.25 ** 0.5)
    # the other columns move less than 2 SE; D-efficient's parent (B-standard) has no cells here
    assert beyond_noise(s, 'd_efficient', 'top1') is None
    table = markdown_table(s)
    assert ('| + cosine | 91.00 ± 1.41 | 52.00 ± 2.83 | 81.00 ± 1.41 | 42.00 ± 2.83 '
            '| top-1 +3.50*, mAP +0.00, pixAcc +0.00, mIoU -1.00 | 77.91 | 79.23 | 79.25 | 39.33 |') in table
    assert '| D-efficient | 87.50 ± 0.71 | 52.00 ± 0.00 | 81.00 ± 0.71 | 43.00 ± 2.83 | - | 77.16 |' in table
    # one seed has no spread: nothing can be called beyond noise
    assert beyond_noise(summarize(cells('d_cosine', 0, 90, 50, 80, 40) + cells('d_efficient', 0, 80, 50, 80, 40)),
                        'd_cosine', 'top1') is None


@pytest.mark.skipif(not osp.isdir(fashion.DEBIAN_DIR), reason='dataset-fashion-mnist not installed')
def test_two_variant_grid_skips_done_cells_and_continues(tmp_path):
    data, work, out = tmp_path / 'data', tmp_path / 'work', tmp_path / 'out'
    subprocess.run([sys.executable, 'tools/prepare_fashion.py', '--out', str(data), '--limit', '300',
                    '--scenes-train', '16', '--scenes-val', '8'], check=True, cwd=REPO, capture_output=True)
    roots = {'cls': f'{data}/imagenet', 'det': f'{data}/VOCdevkit/', 'seg': f'{data}/ADEChallengeData2016'}
    short = ['train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3']
    cmd = [sys.executable, 'tools/transfer_grid.py', '--rows', 'b_standard', 'd_efficient',
           '--work-dir', str(work), '--out', str(out)]
    for step in ('cls', 'det', 'seg'):
        cmd += [f'--{step}-options'] + [f'{s}_dataloader.dataset.data_root={roots[step]}'
                                         for s in ('train', 'val', 'test')]
        cmd += ['train_dataloader.batch_size=32'] if step == 'cls' else short
        # the detector's warmup ends within the run (engine/valid_values.py): the first 3 steps of its
        # 10-iteration line (factor 0.01 + 0.11 per iteration), so the 3 lrs are the config's
        cmd += ['param_scheduler.0.end=3', 'param_scheduler.0.end_factor=0.23'] if step == 'det' else []
    env = dict(os.environ, OMP_NUM_THREADS='1')

    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.stdout.count('pretraining configs/cls/fashion_') == 2
    done = {(r, s): read_results(work / r / 'seed0' / s / 'result.json', task=s)
            for r in ('b_standard', 'd_efficient') for s in ('cls', 'det', 'seg')}
    assert all(0 <= c['metrics']['top1'] <= 100 for (r, s), c in done.items() if s == 'cls')
    assert all(c['provenance']['row'] == r and c['provenance']['seed'] == 0 for (r, s), c in done.items())
    # the variant and weights of each pretraining reached its detector
    det = done[('b_standard', 'det')]['provenance']['backbone']
    assert det['variant'] == 'B' and det['pretrained'].endswith('b_standard/seed0/cls/backbone.pth')
    table = (out / 'table.md').read_text()
    assert '| B-standard |' in table and '| D-efficient |' in table
    assert (out / 'chart.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # the grid's results.json holds those records; --from-results redraws the same table from it
    assert json.load(open(out / 'results.json'))['cells'] == [done[(r, s)] for r in ('b_standard', 'd_efficient')
                                                              for s in ('cls', 'det', 'seg')]
    redraw = subprocess.run([sys.executable, 'tools/transfer_grid.py', '--from-results', str(out / 'results.json'),
                             '--out', str(tmp_path / 'redrawn')], cwd=REPO, capture_output=True, text=True)
    assert redraw.returncode == 0, redraw.stderr
    assert (tmp_path / 'redrawn' / 'table.md').read_text() == table

    # interrupted after training but before the detection cell was recorded: it continues from its checkpoint
    det_cell = work / 'd_efficient' / 'seed0' / 'det'
    os.remove(det_cell / 'result.json')
    seg_mtime = os.path.getmtime(work / 'd_efficient' / 'seed0' / 'seg' / 'result.json')
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'pretraining configs' not in second.stdout  # every pretraining was skipped
    assert second.stdout.count('done before') == 5
    assert read_results(det_cell / 'result.json')['metrics']['mAP'] == \
        pytest.approx(done[('d_efficient', 'det')]['metrics']['mAP'])
    assert '--resume' in (det_cell / 'steps.log').read_text().split('$ ')[-1].splitlines()[0]
    assert os.path.getmtime(work / 'd_efficient' / 'seed0' / 'seg' / 'result.json') == seg_mtime


@pytest.mark.parametrize('name', ['fashion_grid', 'fashion_grid_long'])
def test_committed_grid_table_and_chart_are_what_make_figures_writes(tmp_path, name):
    """`make figures` redraws results/<name> from its committed cell records: the same table and PNG."""
    committed = osp.join(REPO, 'results', name)
    cmd = [sys.executable, 'tools/transfer_grid.py', '--from-results', osp.join(committed, 'results.json'),
           '--out', str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / 'table.md').read_text() == open(osp.join(committed, 'table.md')).read()
    assert (tmp_path / 'chart.png').read_bytes() == open(osp.join(committed, 'chart.png'), 'rb').read()
    if name != 'fashion_grid':
        return
    # every row of Tables 6-8 (and the MobileNet rows) with three seeds
    cells = json.load(open(osp.join(committed, 'results.json')))['cells']
    seeds = {}
    for c in cells:
        seeds.setdefault((c['provenance']['row'], c['task']), set()).add(c['provenance']['seed'])
    from experiments.grid import ROWS
    expected = {(r, t) for r, row in ROWS.items() for t in (('cls', 'det', 'seg') if row.transfer else ('cls',))}
    assert set(seeds) == expected and all(s == {0, 1, 2} for s in seeds.values())


def test_cls_only_runs_no_transfer_cells(tmp_path):
    """--cls-only (a longer pretraining schedule on a subset of rows): pretraining cells only."""
    from experiments.grid import Grid
    calls = []

    class Recording(Grid):
        def pretrain(self, row, seed):
            calls.append((row.name, seed, 'cls'))
            return results_record('cls', dict(top1=50.0), row=row.name, seed=seed)

        def transfer(self, row, seed, step, cls):
            calls.append((row.name, seed, step))
            return results_record(step, {}, row=row.name, seed=seed)

    records = Recording(str(tmp_path)).run(['d_cosine', 'd_mixup'], [0, 1], transfer=False)
    assert calls == [('d_cosine', 0, 'cls'), ('d_cosine', 1, 'cls'), ('d_mixup', 0, 'cls'), ('d_mixup', 1, 'cls')]
    assert [r['task'] for r in records] == ['cls'] * 4
    calls.clear()
    Recording(str(tmp_path)).run(['d_cosine'], [0])
    assert calls == [('d_cosine', 0, 'cls'), ('d_cosine', 0, 'det'), ('d_cosine', 0, 'seg')]
