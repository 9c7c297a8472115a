"""Every tool against what a user can get wrong: one table, each case asserting the exit status 1,
exactly one ``error: ...`` line matching the cause, and that nothing was left or changed (every file
under the case's folder and the shared data is byte-identical afterwards; only the mmengine log
folder of a run that got that far and empty work dirs may appear). A traceback cannot hide here: the
tools' ``main`` runs in this process under ``engine.run_tool``, which re-raises anything that is not a
user error, failing the case. The rows that need a real process (exit status, ``Traceback`` text, a
shell script, a file-size limit) run one.

The checkpoints are built, not trained (a model's state dict plus meta), except one real 1-epoch
pretraining for the rows that need a training state.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import os.path as osp
import re
import resource
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import safe_write

from cls_helpers import make_shapes_imagenet
from det_helpers import make_voc_tree
from scale_helpers import MEAN, REPO, STD, checkpoint_files, child_env, cls_config, free_port
from seg_helpers import make_ade_tree

from engine import run_tool

DET = osp.join(REPO, 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')
SEG = osp.join(REPO, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')
LOG_DIR = re.compile(r'^\d{8}_\d{6}$')  # mmengine's per-run log folder
PIPE = (f"[dict(type='torchvision/Resize', size=32, antialias=True), dict(type='torchvision/CenterCrop', size=32), "
        f"dict(type='torchvision/ToDtype', dtype='float32', scale=False), "
        f"dict(type='torchvision/Normalize', mean={MEAN}, std={STD})]")


# -- running tools in this process ----------------------------------------------------------------
_TOOLS: dict = {}


def tool_main(name: str):
    if name not in _TOOLS:
        spec = importlib.util.spec_from_file_location(f'_bagtricks_tool_{name}', osp.join(REPO, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[name] = module
    return _TOOLS[name].main


def run_in_process(tool: str, *argv) -> tuple[int, str]:
    err = io.StringIO()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with contextlib.redirect_stderr(err):
            run_tool(tool_main(tool), [str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
        if isinstance(code, str):  # sys.exit('error: ...'): the interpreter prints it and exits with 1
            err.write(code + '\n')
            code = 1
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return code, err.getvalue()


def snapshot(*roots) -> dict:
    """Every file under ``roots`` with its sha256 (symlinks and special files by what they are)."""
    files = {}
    for root in roots:
        for folder, dirs, names in os.walk(root):
            for name in names + [d for d in dirs if osp.islink(osp.join(folder, d))]:
                path = osp.join(folder, name)
                if osp.islink(path):
                    files[path] = 'link:' + os.readlink(path)
                elif not osp.isfile(path):
                    files[path] = 'special'
                else:
                    with open(path, 'rb') as f:
                        files[path] = hashlib.sha256(f.read()).hexdigest()
    return files


def new_files(before: dict, after: dict) -> list[str]:
    """Files that appeared, other than inside an mmengine log folder."""
    def in_log_dir(path):
        return any(LOG_DIR.match(part) for part in path.split(os.sep))
    return sorted(p for p in set(after) - set(before) if not in_log_dir(p))


# -- shared inputs --------------------------------------------------------------------------------
def _build(config: str, scope: str | None, **options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        import classification  # noqa: F401
        from backbones.registry import MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model), cfg


def _save_model(path, config, scope=None, **options) -> str:
    model, cfg = _build(config, scope, **options)
    torch.save({'state_dict': model.state_dict(), 'meta': dict(epoch=1, iter=1, cfg=cfg.pretty_text)}, path)
    return str(path)


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad_more')
    make_shapes_imagenet(str(root / 'cls'), num_classes=3, per_class={'train': 2, 'val': 1}, size=36)
    make_voc_tree(str(root / 'det'), {'trainval': 2, 'test': 1}, size=96)
    make_ade_tree(str(root / 'seg'), n_train=2, n_val=1, size=(72, 64))
    extra = ("randomness = dict(seed=0, deterministic=False)\n"
             f"test_dataloader = dict(batch_size=3, num_workers=0, persistent_workers=False, pin_memory=False, "
             f"dataset=dict(data_root={str(root / 'cls')!r}, split='val', pipeline={PIPE}))\n"
             "test_cfg = dict()\ntest_evaluator = dict(type='Accuracy', topk=(1,))\n")
    cls = cls_config(str(root / 'cls.py'), str(root / 'cls'), num_classes=3, batch=6, epochs=1, extra=extra)
    e = dict(root=root, cls=cls)
    e['cls_D'] = _save_model(root / 'cls_D.pth', cls)
    e['cls_B'] = _save_model(root / 'cls_B.pth', cls, **{'model.backbone.variant': 'B'})
    e['cls_5'] = _save_model(root / 'cls_5.pth', cls, **{'model.num_classes': 5})
    e['det'] = _save_model(root / 'det.pth', DET, 'mmdet')
    e['seg'] = _save_model(root / 'seg.pth', SEG, 'mmseg')
    backbone, _ = _build(cls, None)
    torch.save(backbone.backbone.state_dict(), root / 'backbone.pth')
    e['backbone'] = str(root / 'backbone.pth')
    code, err = run_in_process('pretrain', cls, '--work-dir', root / 'trained')  # one real training state
    assert code == 0, err
    e['trained'] = str(root / 'trained' / 'epoch_1.pth')
    blob = open(e['trained'], 'rb').read()
    (root / 'truncated.pth').write_bytes(blob[:len(blob) // 2])
    (root / 'text.pth').write_text('this is not a checkpoint\n')
    (root / 'empty.pth').write_bytes(b'')
    os.symlink(root / 'loop.pth', root / 'loop.pth')
    os.mkfifo(root / 'fifo.pth')
    os.makedirs(root / 'a_dir.pth')
    e['data'] = [root / 'cls', root / 'det', root / 'seg', root / 'trained' / 'epoch_1.pth', root / 'cls_D.pth']
    return e


def _write(path, text) -> str:
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def _write_bytes(path, data: bytes) -> str:
    with open(path, 'wb') as f:
        f.write(data)
    return str(path)


def _live_lock(work):
    """A lock held by a live process on this host (a sleeping child), as a running training holds it."""
    import json
    import socket

    from engine.work_dir_lock import _process_start
    proc = subprocess.Popen(['sleep', '60'])
    os.makedirs(work, exist_ok=True)
    with open(osp.join(work, 'train.lock'), 'w') as f:
        json.dump(dict(pid=proc.pid, host=socket.gethostname(), start=_process_start(proc.pid), since='now'), f)
    return proc


# -- the table: (tool, argv builder, expected error regex) -----------------------------------------
def P(e, t, *extra):  # pretrain on the tiny classification data
    return ('pretrain', [e['cls'], '--work-dir', t / 'work', *extra])


def T(e, t, ckpt, *extra):
    return ('test_cls', [e['cls'], ckpt, '--work-dir', t / 'work', *extra])


def D(e, t, tool, ckpt=None, *extra, opts=()):  # detection tools on the tiny VOC tree
    roots = [f'{k}.dataset.data_root={e["root"]}/det/VOCdevkit/' for k in ('val_dataloader', 'test_dataloader')]
    first = [DET] + ([ckpt] if ckpt else [])
    return (tool, [*first, '--work-dir', t / 'work', *extra, '--cfg-options', *roots, *opts])


def S(e, t, tool, ckpt=None, *extra, opts=()):
    roots = [f'{k}.dataset.data_root={e["root"]}/seg/ADEChallengeData2016' for k in ('val_dataloader', 'test_dataloader')]
    first = [SEG] + ([ckpt] if ckpt else [])
    return (tool, [*first, '--work-dir', t / 'work', *extra, '--cfg-options', *roots, *opts])


CASES = {
    # configs and --cfg-options
    'cfg_syntax_error': (lambda e, t: ('pretrain', [_write(t / 'bad.py', 'model = dict(\n'), '--work-dir', t / 'w']),
                         r'bad\.py: syntax error'),
    'cfg_undefined_name': (lambda e, t: ('pretrain', [_write(t / 'bad.py', 'model = dict(depth=undefined)\n')]),
                           r"bad\.py cannot be read \(NameError: .*undefined"),
    'cfg_missing': (lambda e, t: ('pretrain', [t / 'nope.py']), r'config file not found: .*nope\.py'),
    'cfg_is_dir': (lambda e, t: ('pretrain', [t]), r'config file not found: .* \(it is a directory\)'),
    'opt_without_equals': (lambda e, t: P(e, t, '--cfg-options', 'model.num_classes'),
                           r"--cfg-options 'model\.num_classes': expected KEY=VALUE"),
    'opt_int_is_text': (lambda e, t: P(e, t, '--cfg-options', 'model.num_classes=abc'),
                        r"model\.num_classes='abc': expected an integer \(the config has 3\)"),
    'opt_float_is_text': (lambda e, t: P(e, t, '--cfg-options', 'optim_wrapper.optimizer.lr=fast'),
                          r"optim_wrapper\.optimizer\.lr='fast': expected a number"),
    'opt_bool_is_text': (lambda e, t: P(e, t, '--cfg-options', 'randomness.deterministic=maybe'),
                         r"randomness\.deterministic='maybe': expected a boolean"),
    'opt_zero_epochs': (lambda e, t: P(e, t, '--cfg-options', 'train_cfg.max_epochs=0'),
                        r'train_cfg\.max_epochs = 0: expected an integer >= 1'),
    'opt_zero_batch': (lambda e, t: P(e, t, '--cfg-options', 'train_dataloader.batch_size=0'),
                       r'train_dataloader\.batch_size = 0: expected an integer >= 1'),
    'opt_depth_19': (lambda e, t: P(e, t, '--cfg-options', 'model.backbone.depth=19'),
                     r'model\.backbone\.depth = 19: expected one of 18, 34, 50, 101, 152'),
    'opt_variant_E': (lambda e, t: P(e, t, '--cfg-options', 'model.backbone.variant=E'),
                      r"model config does not build: .*variant must be one of .*got 'E'"),
    'opt_list_index': (lambda e, t: P(e, t, '--cfg-options', 'param_scheduler.7.gamma=0.1'),
                       r'param_scheduler is a list of \d items; expected an index'),
    'unknown_flag': (lambda e, t: P(e, t, '--bogus'), r'unrecognized arguments: --bogus \(usage: '),
    'bad_launcher': (lambda e, t: P(e, t, '--launcher', 'ssh'), r"argument --launcher: invalid choice: 'ssh'"),
    # --resume of what is not this run's training state
    'resume_text_file': (lambda e, t: P(e, t, '--resume', e['root'] / 'text.pth'),
                         r'text\.pth: not a readable torch checkpoint'),
    'resume_truncated': (lambda e, t: P(e, t, '--resume', e['root'] / 'truncated.pth'),
                         r'truncated\.pth: truncated or damaged checkpoint'),
    'resume_empty': (lambda e, t: P(e, t, '--resume', e['root'] / 'empty.pth'), r'empty\.pth is empty \(0 bytes\)'),
    'resume_directory': (lambda e, t: P(e, t, '--resume', e['root'] / 'a_dir.pth'), r'a_dir\.pth is a directory'),
    'resume_fifo': (lambda e, t: P(e, t, '--resume', e['root'] / 'fifo.pth'), r'fifo\.pth is not a regular file'),
    'resume_symlink_loop': (lambda e, t: P(e, t, '--resume', e['root'] / 'loop.pth'),
                            r'loop\.pth cannot be read \(Too many levels of symbolic links\)'),
    'resume_detector': (lambda e, t: P(e, t, '--resume', e['det']),
                        r'det\.pth: --resume needs a training checkpoint as mmengine writes it: it has no message_hub'),
    'resume_other_variant': (lambda e, t: P(e, t, '--resume', e['cls_B']),
                             r'cls_B\.pth: --resume needs a training checkpoint .*no message_hub'),
    'resume_backbone_export': (lambda e, t: P(e, t, '--resume', e['backbone']),
                               r'backbone\.pth holds no training state'),
    'load_from_other_classes': (lambda e, t: P(e, t, '--cfg-options', f'load_from={e["cls_5"]}'),
                                r'cls_5\.pth does not fit .*head\.fc\.weight: file \(5, \d+\) vs model \(3, \d+\)'),
    'work_dir_in_use': (lambda e, t: P(e, t), r'work dir .*work is in use by a running training \(pid \d+ on host'),
    # evaluation and export
    'test_cls_other_variant': (lambda e, t: T(e, t, e['cls_B']), r"cls_B\.pth does not fit BagClassifier"),
    'test_cls_detector': (lambda e, t: T(e, t, e['det']), r'det\.pth does not fit .*holds a detector'),
    'test_cls_other_classes': (lambda e, t: T(e, t, e['cls_5']),
                               r'cls_5\.pth does not fit BagClassifier\(.*, 3 classes\): 2 shape mismatches'),
    'test_cls_out_is_dir': (lambda e, t: T(e, t, e['cls_D'], '--out', e['root']),
                            r'results file .* is a folder; expected a file path'),
    'test_cls_out_is_checkpoint': (lambda e, t: T(e, t, e['cls_D'], '--out', e['cls_D']),
                                   r'results file .*cls_D\.pth is the input'),
    'test_cls_missing_checkpoint': (lambda e, t: T(e, t, t / 'nope.pth'), r'checkpoint not found: .*nope\.pth'),
    'test_det_classifier': (lambda e, t: D(e, t, 'test_det', e['cls_D']),
                            r'cls_D\.pth does not fit FasterRCNN\(.*holds a classifier \(backbone\.\*, head\.\*\)'),
    'test_det_segmentor': (lambda e, t: D(e, t, 'test_det', e['seg']), r'seg\.pth does not fit FasterRCNN.*segmentor'),
    'test_det_results_path_is_dir': (lambda e, t: (os.makedirs(t / 'work' / 'test_results.json'),
                                                   D(e, t, 'test_det', e['det']))[1],
                                     r'results file .*test_results\.json is a folder'),
    'test_seg_detector': (lambda e, t: S(e, t, 'test_seg', e['det']),
                          r'det\.pth does not fit EncoderDecoder\(.*holds a detector'),
    'test_seg_truncated': (lambda e, t: S(e, t, 'test_seg', e['root'] / 'truncated.pth'), r'truncated or damaged'),
    'train_det_resume_segmentor': (lambda e, t: D(e, t, 'train_det', None, '--resume', e['seg']),
                                   r'seg\.pth: --resume needs a training checkpoint .*no message_hub'),
    'train_seg_resume_classifier': (lambda e, t: S(e, t, 'train_seg', None, '--resume', e['trained']),
                                    r'epoch_1\.pth does not fit EncoderDecoder.*holds a classifier'),
    'train_seg_classes_text': (lambda e, t: S(e, t, 'train_seg', opts=['model.decode_head.num_classes=abc']),
                               r"decode_head\.num_classes='abc': expected an integer"),
    'train_det_pretrained_missing': (lambda e, t: D(e, t, 'train_det', None, '--pretrained', t / 'nope.pth'),
                                     r'--pretrained: no such file .*nope\.pth'),
    'train_det_amp_on_cpu': (lambda e, t: D(e, t, 'train_det', None, '--amp'),
                             r"--amp on CPU: mmcv's CPU nms and RoIAlign take float32 only"),
    'export_out_is_input': (lambda e, t: ('export_backbone', [e['trained'], e['trained']]),
                            r'epoch_1\.pth is the input .*epoch_1\.pth; writing it would replace the input'),
    'export_out_is_dir': (lambda e, t: ('export_backbone', [e['trained'], t]), r'is a folder; expected a file path'),
    'export_out_is_training_checkpoint': (lambda e, t: ('export_backbone', [e['trained'], e['cls_D']]),
                                          r'cls_D\.pth exists and was not written by bagtricks'),
    'export_truncated': (lambda e, t: ('export_backbone', [e['root'] / 'truncated.pth', t / 'bb.pth']),
                         r'truncated or damaged'),
    'export_config_syntax': (lambda e, t: ('export_backbone', [e['trained'], t / 'bb.pth', '--config',
                                                               _write(t / 'c.py', 'model = (\n')]), r'syntax error'),
    'export_no_config_stored': (lambda e, t: ('export_backbone', [e['backbone'], t / 'bb.pth']),
                                r'backbone\.pth stores no config; pass --config'),
    'export_meta_cfg_is_code': (lambda e, t: (torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': {'cfg': (
        "model = dict(backbone=dict(type='BagResNet', depth=__import__('os').system('touch MARKER')))")}},
        t / 'code.pth'), ('export_backbone', [t / 'code.pth', t / 'bb.pth']))[1],
        r'cannot read model\.backbone from the config stored in the checkpoint as plain data '
        r'\(ValueError: line 1: Call is not literal data\); pass --config'),
    # prepare_fashion and the grid
    'prepare_out_unrelated': (lambda e, t: (_write(t / 'mine.txt', 'keep me'),
                                            ('prepare_fashion', ['--out', t, '--limit', '5']))[1],
                              r'--out .* exists and was not written by bagtricks .*; it is kept'),
    'prepare_out_is_link': (lambda e, t: (os.makedirs(t / 'real'), os.symlink(t / 'real', t / 'link'),
                                          ('prepare_fashion', ['--out', t / 'link']))[2],
                            r'--out .*link is a symlink \(to .*real\); outputs are never written through a link'),
    'prepare_out_is_file': (lambda e, t: ('prepare_fashion', ['--out', _write(t / 'f', 'x')]),
                            r'--out .*f is a file; expected a folder'),
    'prepare_scene_too_small': (lambda e, t: ('prepare_fashion', ['--out', t / 'o', '--scene-size', '40']),
                                r"--scene-size: '40': expected an integer from 56 to 4096"),
    'prepare_no_val_scenes': (lambda e, t: ('prepare_fashion', ['--out', t / 'o', '--scenes-val', '0']),
                              r"--scenes-val: '0': expected an integer from 1 to 100000"),
    'prepare_zero_limit': (lambda e, t: ('prepare_fashion', ['--out', t / 'o', '--limit', '0']),
                           r"--limit: '0': expected an integer >= 1"),
    'grid_unknown_row': (lambda e, t: ('transfer_grid', ['--rows', 'd_cosnie', '--work-dir', t / 'g']),
                         r"unknown row\(s\) \['d_cosnie'\]"),
    'grid_results_not_a_grid': (lambda e, t: ('transfer_grid', ['--from-results', _write(t / 'r.json', '[1, 2]')]),
                                r'grid results file .*r\.json: expected a JSON object with a "cells" list'),
    'grid_results_not_utf8': (lambda e, t: ('transfer_grid', ['--from-results',
                                                               _write_bytes(t / 'r.json', b'\xff\xfe{')]),
                              r'grid results file .*r\.json is not JSON \(not UTF-8 text\)'),
    'grid_results_cell_without_metric': (
        lambda e, t: ('transfer_grid', ['--from-results', _write(t / 'r.json', json.dumps({'cells': [dict(
            task='cls', metrics={'top5': 90.0}, per_class=None, provenance=dict(row='d_cosine', seed=0))]}))]),
        r'r\.json, cell 0: expected a row of the grid .* with the cls metrics top1'),
}


@pytest.mark.parametrize('name', list(CASES))
def test_bad_input_table(name, env, tmp_path):
    build, expected = CASES[name]
    tool, argv = build(env, tmp_path)
    holder = _live_lock(tmp_path / 'work') if name == 'work_dir_in_use' else None
    before = snapshot(tmp_path, *env['data'])
    try:
        code, err = run_in_process(tool, *argv)
    finally:
        if holder:
            holder.kill()
            holder.wait()
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert code == 1, err[-3000:]
    assert len(errors) == 1, err[-3000:]
    assert re.search(expected, errors[0]), errors[0]
    after = snapshot(tmp_path, *env['data'])
    assert new_files(before, after) == []
    assert {p: h for p, h in before.items()} == {p: after[p] for p in before}  # nothing changed or deleted
    assert not osp.exists(osp.join(REPO, 'MARKER')) and not osp.exists(tmp_path / 'MARKER')


def test_the_table_is_big_enough():
    assert len(CASES) + len(SUBPROCESS_CASES) >= 40


def test_good_inputs_pass_the_same_checks(env, tmp_path):
    """The controls: the fitting checkpoint evaluates and writes its result; the export of the real
    training state (backbone arguments read from its meta as data) is written and loads weights-only."""
    out = tmp_path / 'res.json'
    code, err = run_in_process('test_cls', env['cls'], env['cls_D'], '--work-dir', tmp_path / 'w', '--out', out)
    assert code == 0 and out.is_file(), err[-2000:]
    code, err = run_in_process('export_backbone', env['trained'], tmp_path / 'bb.pth')
    assert code == 0, err[-2000:]
    state = torch.load(tmp_path / 'bb.pth', weights_only=True)
    trained = torch.load(env['trained'], weights_only=False)['state_dict']
    assert all(torch.equal(v, trained[f'backbone.{k}']) for k, v in state.items())
    code, _ = run_in_process('export_backbone', env['trained'], tmp_path / 'bb.pth')  # its own file: replaced
    assert code == 0


# -- rows that need a real process ------------------------------------------------------------------
def _sh(*cmd, env=None, limit_bytes=None, timeout=240):
    def preexec():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return subprocess.run([str(c) for c in cmd], cwd=REPO, env=env or child_env(), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec if limit_bytes else None)


def _dist(*args, **kw):
    return ('bash', osp.join(REPO, 'tools', 'dist_train.sh'), *args), kw


SUBPROCESS_CASES = {
    'dist_nproc_not_a_number': (lambda e, t: _dist('pretrain', e['cls'], 'abc'), r"NPROC 'abc': expected a positive"),
    'dist_nproc_zero': (lambda e, t: _dist('pretrain', e['cls'], '0'), r"NPROC '0': expected a positive integer"),
    'dist_unknown_tool': (lambda e, t: _dist('train', e['cls'], '2'), r"unknown tool 'train'"),
    'dist_missing_config': (lambda e, t: _dist('pretrain', t / 'nope.py', '2'), r'config file not found'),
    'dist_without_venv': (lambda e, t: ((t / 'tools').mkdir(), shutil.copy(osp.join(REPO, 'tools', 'dist_train.sh'),
                                                                           t / 'tools'),
                                        (('bash', t / 'tools' / 'dist_train.sh', 'pretrain', e['cls'], '1'),
                                         dict(env={k: v for k, v in child_env().items() if k != 'PYTHON'})))[2],
                          r"no .*\.venv/bin/python: run 'make setup' first"),
    'dist_two_processes_config_error': (lambda e, t: _dist('pretrain', _write(t / 'bad.py', 'x = [\n'), '2',
                                                           env=child_env(MASTER_PORT=str(free_port()))),
                                        r"bad\.py: syntax error"),  # once, not per process, no torchrun report
    'config_syntax_real_process': (lambda e, t: ((sys.executable, osp.join(REPO, 'tools', 'pretrain.py'),
                                                  _write(t / 'bad.py', 'x = [\n')), {}), r'syntax error'),
    'disk_full_while_saving': (lambda e, t: ((sys.executable, osp.join(REPO, 'tools', 'pretrain.py'), e['cls'],
                                              '--work-dir', _copy_trained(e, t), '--resume', '--cfg-options',
                                              'train_cfg.max_epochs=2'), dict(limit_bytes=400_000)),
                               r'could not write checkpoint .*epoch_2\.pth \(.*(disk is full|size limit).*; '
                               r'the last complete checkpoint .*epoch_1\.pth is intact'),
    'disk_full_while_exporting': (lambda e, t: ((sys.executable, osp.join(REPO, 'tools', 'export_backbone.py'),
                                                 e['trained'], t / 'bb.pth'), dict(limit_bytes=50_000)),
                                  r'could not write .*bb\.pth \(.*nothing was written'),
}


def _copy_trained(e, t) -> str:
    work = t / 'resumed'
    shutil.copytree(e['root'] / 'trained', work)
    return str(work)


@pytest.mark.parametrize('name', list(SUBPROCESS_CASES))
def test_bad_input_in_a_real_process(name, env, tmp_path):
    build, expected = SUBPROCESS_CASES[name]
    cmd, kw = build(env, tmp_path)
    before = snapshot(tmp_path, *env['data'])
    proc = _sh(*cmd, **kw)
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert re.search(expected, errors[0]), errors[0]
    after = snapshot(tmp_path, *env['data'])
    assert new_files(before, after) == []
    # the resumed run's own config copy is rewritten by design, and the writing layer's record of it with it
    own = {str(tmp_path / 'resumed' / 'cls.py'), str(tmp_path / 'resumed' / safe_write.MANIFEST)}
    assert {p: after.get(p) for p in before if p not in own} == {p: h for p, h in before.items() if p not in own}
    if name == 'disk_full_while_saving':
        work = tmp_path / 'resumed'
        assert checkpoint_files(str(work)) == ['epoch_1.pth', 'last_checkpoint']
        assert (work / 'last_checkpoint').read_text() == 'epoch_1.pth'


def test_traceback_on_request(env, tmp_path):
    """BAGTRICKS_TRACEBACK=1 keeps the traceback of a user error (for a bug report)."""
    proc = _sh(sys.executable, osp.join(REPO, 'tools', 'pretrain.py'), _write(tmp_path / 'bad.py', 'x = [\n'),
               env=child_env(BAGTRICKS_TRACEBACK='1'))
    assert proc.returncode != 0 and 'Traceback' in proc.stderr and 'SyntaxError' in proc.stderr


def test_grid_names_a_steps_user_error_without_the_rerun_hint(env, tmp_path):
    """A step that stopped on a user error fails the same way when re-run: the grid's one line names the
    step's error and asks for a fix; only a crash gets 'continue where it stopped'."""
    grid = importlib.import_module('experiments.grid')
    spec = importlib.util.spec_from_file_location('_tg', osp.join(REPO, 'tools', 'transfer_grid.py'))
    tg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tg)
    user = tg.step_failure(grid.StepFailed('test_cls.py', 1, 'x/steps.log',
                                           ['INFO blah', 'error: checkpoint not found: x/epoch_2.pth']))
    assert user.startswith('test_cls.py failed (exit 1); see x/steps.log: checkpoint not found: x/epoch_2.pth')
    assert 'continue where it stopped' not in user and 'fix that, then re-run' in user
    crash = tg.step_failure(grid.StepFailed('pretrain.py', -9, 'y.log', ['Epoch(train) [1][3/9]']))
    assert crash.endswith('re-run the same command to continue where it stopped')
    # the grid tests the checkpoint the run ended with, not epoch_<config's max_epochs>
    cell = tmp_path / 'cell'
    cell.mkdir()
    (cell / 'epoch_1.pth').write_bytes(b'x')
    (cell / 'last_checkpoint').write_text('epoch_1.pth')
    assert grid.read_last_checkpoint(str(cell)) == str(cell / 'epoch_1.pth')
