"""The hand-off of Section 6: a pretraining run, exported by tools/export_backbone.py, is the backbone the
detector and the segmentor start from (--pretrained), tensor for tensor, before their first step."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.hooks import Hook

from experiments import fashion

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
pytestmark = pytest.mark.skipif(not osp.isdir(fashion.DEBIAN_DIR), reason='dataset-fashion-mnist not installed')


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorded(Exception):
    pass


class BackboneAtStart(Hook):
    """Records the backbone's tensors after weight init, before the first step, then stops the run."""
    state = None

    def before_train(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.model.backbone.state_dict().items()}
        raise Recorded


def _run(*args):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('handoff')
    data = tmp / 'data'
    _run('tools/prepare_fashion.py', '--out', str(data), '--limit', '256', '--scenes-train', '8', '--scenes-val', '4')
    work = tmp / 'cls'
    roots = [f'{s}_dataloader.dataset.data_root={data}/imagenet' for s in ('train', 'val', 'test')]
    _run('tools/pretrain.py', 'configs/cls/fashion_d_efficient.py', '--work-dir', str(work), '--cfg-options',
         *roots, 'train_dataloader.batch_size=32', 'train_cfg.max_epochs=1')
    backbone = tmp / 'backbone.pth'
    _run('tools/export_backbone.py', str(work / 'epoch_1.pth'), str(backbone))
    state = torch.load(backbone, weights_only=True)
    trained = torch.load(work / 'epoch_1.pth', weights_only=False)['state_dict']
    # the export is the trained classifier's backbone, not a fresh initialisation
    assert torch.equal(state['layer1.0.conv1.weight'], trained['backbone.layer1.0.conv1.weight'])
    return data, backbone, state


@pytest.mark.parametrize('task,config,data_dir', [
    ('train_det', 'configs/det/fashion_faster_rcnn.py', 'VOCdevkit/'),
    ('train_seg', 'configs/seg/fashion_fcn.py', 'ADEChallengeData2016'),
])
def test_exported_pretraining_is_the_starting_backbone(pretrained, tmp_path, task, config, data_dir):
    data, backbone, exported = pretrained
    runner = _tool(task).build_runner([
        config, '--pretrained', str(backbone), '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        *[f'{s}_dataloader.dataset.data_root={data}/{data_dir}' for s in ('train', 'val', 'test')]])
    hook = BackboneAtStart()
    runner.register_hook(hook)
    with pytest.raises(Recorded):
        runner.train()
    assert set(hook.state) == set(exported)
    for key, value in exported.items():
        assert torch.equal(hook.state[key], value), key
    assert not torch.equal(exported['conv1.0.weight'], torch.zeros_like(exported['conv1.0.weight']))
