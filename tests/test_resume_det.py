"""Detection survives SIGKILL too: an iteration-based Faster R-CNN run killed after iteration 5 and
resumed from its iteration-3 checkpoint ends with the uninterrupted run's weights.

Randomness in play: shuffled InfiniteSampler order, random flips decoded in the main process
(``num_workers=0``), and the RPN / R-CNN random samplers. mmengine's resume fast-forwards the data
iterator by 3 batches; engine/determinism.py re-derives the main RNG before every fetch and every
iteration, so neither the fast-forward nor the kill shifts what later iterations draw.
"""
import os.path as osp

from det_helpers import make_voc_tree
from scale_helpers import checkpoint_files, det_config, run_tool, state_dict


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_det_sigkill_then_resume_reproduces_the_uninterrupted_run(tmp_path):
    make_voc_tree(str(tmp_path / 'voc'), {'trainval': 6}, size=128, seed=0)
    root = str(tmp_path / 'voc' / 'VOCdevkit') + '/'
    setup = dict(batch=2, iters=6, ckpt_every=3, augment=True)
    full = det_config(str(tmp_path / 'full.py'), root, **setup)
    killed = det_config(str(tmp_path / 'killed.py'), root, **setup, kill_at=5)
    run_tool('train_det', full, '--work-dir', str(tmp_path / 'full'))
    work = str(tmp_path / 'killed')
    proc = run_tool('train_det', killed, '--work-dir', work, check=False)
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert checkpoint_files(work) == ['iter_3.pth', 'last_checkpoint']
    out = run_tool('train_det', full, '--work-dir', work, '--resume')
    assert 'Advance dataloader 3 steps' in out.stdout + out.stderr

    uninterrupted = state_dict(str(tmp_path / 'full' / 'iter_6.pth'))
    assert _max_diff(uninterrupted, state_dict(osp.join(work, 'iter_3.pth'))) > 1e-3
    assert _max_diff(uninterrupted, state_dict(osp.join(work, 'iter_6.pth'))) < 1e-6  # measured 0.0
