"""mmdet's and mmseg's own ``tools/train.py`` (shipped in their wheels under ``.mim/tools``) run the project's
fashion det/seg configs: the config's ``runner_type='BagRunner'`` brings the checkpoint policy and the
preflight checks along, and the project's test tools read the checkpoints those runs write."""
import os.path as osp
import subprocess
import sys

import pytest

import safe_write
from engine.results import read_results
from scale_helpers import REPO, child_env


def _mm_tool(package: str, name: str) -> str:
    import importlib.util
    spec = importlib.util.find_spec(package)
    path = osp.join(osp.dirname(spec.origin), '.mim', 'tools', name)
    assert osp.isfile(path), path
    return path


@pytest.fixture(scope='module')
def fashion(tmp_path_factory):
    out = tmp_path_factory.mktemp('fashion') / 'data'
    proc = subprocess.run([sys.executable, 'tools/prepare_fashion.py', '--out', str(out), '--limit', '100',
                           '--scenes-train', '8', '--scenes-val', '4'], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def _run(cmd, timeout=600):
    proc = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f'{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'
    return proc.stdout + proc.stderr


@pytest.mark.parametrize('task', ['det', 'seg'])
def test_openmmlab_train_tool_runs_our_config_with_our_runner(task, fashion, tmp_path):
    package, config, root, test_tool = {
        'det': ('mmdet', 'configs/det/fashion_faster_rcnn.py', fashion / 'VOCdevkit', 'test_det.py'),
        'seg': ('mmseg', 'configs/seg/fashion_fcn.py', fashion / 'ADEChallengeData2016', 'test_seg.py'),
    }[task]
    work = tmp_path / 'work'
    data = [f'train_dataloader.dataset.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/']
    log = _run([sys.executable, _mm_tool(package, 'train.py'), config, '--work-dir', str(work), '--cfg-options',
                *data, 'train_cfg.max_iters=4', 'train_cfg.val_interval=4', 'default_hooks.checkpoint.interval=4',
                'default_hooks.logger.interval=2', 'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
                # the detector's warmup ends within the run (engine/valid_values.py): the first 4 steps of its
                # 10-iteration line (factor 0.01 + 0.11 per iteration), so the 4 lrs are the config's
                *(['param_scheduler.0.end=4', 'param_scheduler.0.end_factor=0.34'] if task == 'det' else [])])
    assert 'Iter(train) [4/4]' in log
    assert 'img/s:' in log  # the config's log processor, not the toolbox default
    # BagRunner wrote the checkpoint: renamed from a temporary file when complete, last_checkpoint relative to the
    # work dir
    assert (work / 'iter_4.pth').is_file() and not list(work.glob(safe_write.TMP_PREFIX + '*'))
    assert (work / 'last_checkpoint').read_text().strip() == 'iter_4.pth'
    # the project's own test tool reads that checkpoint strictly and writes its results file
    out = _run([sys.executable, osp.join(REPO, 'tools', test_tool), config, str(work / 'iter_4.pth'),
                '--work-dir', str(tmp_path / 'test'), '--cfg-options', *data[-2:]])
    assert 'loaded' in out or 'Load checkpoint' in out
    results = read_results(tmp_path / 'test' / 'test_results.json', task=task)
    assert results['provenance']['num_images'] == 4 and results['provenance']['checkpoint'].endswith('iter_4.pth')
    if task == 'det':
        assert results['metrics']['mAP'] == 0.0  # 4 iterations from random weights detect nothing
        assert len(results['per_class']['AP50']) == 10
    else:
        assert 0.0 <= results['metrics']['mIoU'] <= 100.0 and 0.0 < results['metrics']['pixAcc'] <= 100.0
        assert len(results['per_class']['IoU']) == 11


def test_pretrained_flag_takes_mmengine_names(tmp_path):
    """--pretrained accepts what init_cfg accepts: a file, or a name resolved in mmengine's cache at load time."""
    from backbones.pretrained import apply_pretrained
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'seg', 'fcn_r50d-cosine_ade20k.py'))
    cfg.model.pretrained = 'open-mmlab://resnet50_v1c'  # mmseg's model-level spelling, as stock configs have it
    apply_pretrained(cfg, 'torchvision://resnet50')
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='torchvision://resnet50')
    assert cfg.model.pretrained is None  # one source of weights, not two
    weights = tmp_path / 'w.pth'
    weights.write_bytes(b'')
    apply_pretrained(cfg, str(weights))
    assert cfg.model.backbone.init_cfg.checkpoint == str(weights)
    with pytest.raises(FileNotFoundError, match='no such file'):
        apply_pretrained(cfg, str(tmp_path / 'missing.pth'))
