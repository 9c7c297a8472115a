"""The writing layer (safe_write) by kind of output path, generated with Hypothesis: for every kind of thing that
can sit where an output goes (nothing, the project's own file, a user's file, a file of ours edited since, a
symlink, a FIFO, a device node, a socket, a folder, an input file, a path inside the data root), a write either
happens (absent, ours) or is one OutputError and nothing else on disk changed; through the tools the refusal
is exit status 1 and one ``error:`` line. Plus: a killed writer leaves only a temporary file, which the next
write removes.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import os.path as osp
import signal
import socket
import stat
import subprocess
import sys
import tempfile

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import safe_write
from cls_helpers import make_shapes_imagenet
from scale_helpers import REPO, cls_config

FILE_KINDS = ('absent', 'ours', 'user_file', 'ours_edited', 'link_to_user_file', 'link_to_ours', 'dangling_link',
              'fifo', 'device', 'socket', 'user_dir', 'empty_dir', 'inside_data', 'is_input')
ALLOWED = {'absent', 'ours'}
names = st.from_regex(r'[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}', fullmatch=True).filter(
    lambda n: not n.startswith(safe_write.TMP_PREFIX) and n != safe_write.MANIFEST)


def snapshot(root: str) -> dict:
    """Every path under ``root``: its kind, and a file's bytes' hash or a link's target."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = osp.join(folder, name)
            st_ = os.lstat(path)
            if stat.S_ISLNK(st_.st_mode):
                seen[path] = ('link', os.readlink(path))
            elif stat.S_ISREG(st_.st_mode):
                with open(path, 'rb') as f:
                    seen[path] = ('file', hashlib.sha256(f.read()).hexdigest())
            else:
                seen[path] = (stat.S_IFMT(st_.st_mode),)
    return seen


def make_kind(kind: str, root: str, name: str, content: bytes) -> str:
    """Build the situation ``kind`` under ``root``; returns the output path to write."""
    data, out = osp.join(root, 'data'), osp.join(root, 'out')
    os.makedirs(osp.join(data, 'train'))
    with open(osp.join(data, 'train', 'img.txt'), 'wb') as f:
        f.write(b'data')
    with open(osp.join(root, 'input.pth'), 'wb') as f:
        f.write(b'weights')
    os.makedirs(out)
    target = osp.join(out, name)
    user = osp.join(root, 'user.txt')
    with open(user, 'wb') as f:
        f.write(content)
    if kind in ('ours', 'ours_edited', 'link_to_ours'):
        safe_write.write_json(target if kind != 'link_to_ours' else osp.join(out, 'ours.json'), {'old': 1})
    if kind == 'ours_edited':
        with open(target, 'ab') as f:
            f.write(b' ')
    elif kind == 'user_file':
        with open(target, 'wb') as f:
            f.write(content)
    elif kind == 'link_to_user_file':
        os.symlink(user, target)
    elif kind == 'link_to_ours':
        os.symlink(osp.join(out, 'ours.json'), target)
    elif kind == 'dangling_link':
        os.symlink(osp.join(root, 'nowhere'), target)
    elif kind == 'fifo':
        os.mkfifo(target)
    elif kind == 'device':
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # /dev/null's numbers
    elif kind == 'socket':
        s = socket.socket(socket.AF_UNIX)
        s.bind(target)
        s.close()
    elif kind == 'user_dir':
        os.makedirs(osp.join(target, 'keep'))
    elif kind == 'empty_dir':
        os.makedirs(target)
    elif kind == 'inside_data':
        target = osp.join(data, 'train', name)
    elif kind == 'is_input':
        target = osp.join(root, 'input.pth')
    return target


def _can(kind: str) -> bool:
    return kind != 'device' or os.geteuid() == 0  # mknod of a device needs root


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(FILE_KINDS).filter(_can), name=names, content=st.binary(max_size=64),
       value=st.dictionaries(st.text(max_size=5), st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                             | st.text(max_size=8), max_size=4))
def test_write_by_kind_of_path(kind, name, content, value):
    with tempfile.TemporaryDirectory() as root:
        target = make_kind(kind, root, name, content)
        before = snapshot(root)
        inputs = dict(input_files=[osp.join(root, 'input.pth')], input_dirs=[osp.join(root, 'data')])
        if kind in ALLOWED:
            safe_write.write_json(target, value, **inputs)
            with open(target, encoding='utf-8') as f:
                assert json.load(f) == json.loads(json.dumps(value))
            assert safe_write.is_ours(target)
            after = snapshot(root)
            changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
            assert changed <= {target, osp.join(root, 'out', safe_write.MANIFEST)}
        else:
            with pytest.raises(safe_write.OutputError) as e:
                safe_write.write_json(target, value, **inputs)
            assert '\n' not in str(e.value) and target in str(e.value)
            assert snapshot(root) == before  # nothing created, replaced or removed
        assert not [n for n in os.listdir(osp.join(root, 'out')) if n.startswith(safe_write.TMP_PREFIX)]


@settings(deadline=None, max_examples=10)
@given(kind=st.sampled_from(FILE_KINDS).filter(_can), name=names)
def test_remove_only_what_it_wrote(kind, name):
    with tempfile.TemporaryDirectory() as root:
        target = make_kind(kind, root, name, b'user data')
        before = snapshot(root)
        removed = safe_write.remove(target)
        assert removed == (kind == 'ours')
        if not removed:
            assert snapshot(root) == before


def test_failed_writer_leaves_nothing(tmp_path):
    target = tmp_path / 'r.json'
    safe_write.write_json(str(target), {'a': 1})

    def broken(tmp):
        with open(tmp, 'w') as f:
            f.write('half')
        raise OSError(28, 'No space left on device')
    with pytest.raises(OSError):
        safe_write.write_with(str(target), broken)
    assert json.loads(target.read_text()) == {'a': 1}
    assert sorted(os.listdir(tmp_path)) == [safe_write.MANIFEST, 'r.json']


def test_nan_is_not_written_as_json(tmp_path):
    with pytest.raises(ValueError):
        safe_write.write_json(str(tmp_path / 'x.json'), {'a': float('nan')})
    assert os.listdir(tmp_path) == []


KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import safe_write
def write(tmp):
    with open(tmp, 'wb') as f:
        f.write(b'x' * 1000)
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
safe_write.write_with({target!r}, write)
"""


def test_killed_write_is_cleaned_by_the_next(tmp_path):
    target = str(tmp_path / 'backbone.pth')
    safe_write.write_bytes(target, b'complete')
    proc = subprocess.run([sys.executable, '-c', KILLER.format(repo=REPO, target=target)])
    assert proc.returncode == -signal.SIGKILL
    left = [n for n in os.listdir(tmp_path) if n.startswith(safe_write.TMP_PREFIX)]
    assert len(left) == 1 and open(target, 'rb').read() == b'complete'  # the target is the old, complete file
    safe_write.write_bytes(str(tmp_path / 'other.pth'), b'next run')
    assert not [n for n in os.listdir(tmp_path) if n.startswith(safe_write.TMP_PREFIX)]
    assert open(target, 'rb').read() == b'complete'


def test_tree_is_replaced_only_when_ours(tmp_path):
    out = str(tmp_path / 'prepared')

    def build(tmp):
        with open(osp.join(tmp, 'a.txt'), 'w') as f:
            f.write('1')
    safe_write.write_tree(out, build)
    safe_write.write_tree(out, build)  # ours: replaced
    user = tmp_path / 'mine'
    (user / 'sub').mkdir(parents=True)
    with pytest.raises(safe_write.OutputError):
        safe_write.write_tree(str(user), build)
    assert os.listdir(user) == ['sub']

    def failing(tmp):
        build(tmp)
        raise RuntimeError('interrupted')
    with pytest.raises(RuntimeError):
        safe_write.write_tree(out, failing)
    assert os.listdir(out) == ['a.txt']
    assert not [n for n in os.listdir(tmp_path) if n.startswith(safe_write.TMP_PREFIX)]


# -- through the tools: one error line, exit 1, nothing changed ------------------------------------------------
def _tool(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'tool_{name}', osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(tool: str, argv: list[str]) -> tuple[int, str]:
    from engine.guard import run_tool
    main = _tool(tool).main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            run_tool(main, argv)
            code = 0
        except SystemExit as e:
            code = e.code
    return code, err.getvalue()


def assert_one_error_line(code, err):
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    import torchvision
    path = tmp_path_factory.mktemp('weights') / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return str(path)


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(set(FILE_KINDS) - ALLOWED - {'inside_data'})).filter(_can), name=names,
       content=st.binary(max_size=32))  # (convert_weights reads no data root)
def test_convert_weights_refuses_output_by_kind(weights, kind, name, content):
    with tempfile.TemporaryDirectory() as root:
        target = make_kind(kind, root, name, content)
        if kind == 'is_input':
            target = weights
        before, weights_before = snapshot(root), snapshot(osp.dirname(weights))
        code, err = run_in_process('convert_weights', [weights, target, '--depth', '18', '--variant', 'B'])
        assert_one_error_line(code, err)
        assert snapshot(root) == before and snapshot(osp.dirname(weights)) == weights_before


@pytest.fixture(scope='module')
def cls_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('workdir_kinds')
    data = make_shapes_imagenet(str(root / 'data'), num_classes=2, per_class={'train': 2, 'val': 1}, size=36)
    os.makedirs(root / 'cfg')
    config = cls_config(str(root / 'cfg' / 'cls.py'), data, num_classes=2, batch=2, epochs=1)
    return str(root), data, config


WORK_DIR_KINDS = ('config_folder', 'inside_data', 'data_root', 'contains_data', 'link_to_dir', 'file', 'fifo',
                  'device', 'socket')


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(WORK_DIR_KINDS).filter(_can), name=names)
def test_pretrain_refuses_work_dir_by_kind(cls_setup, kind, name):
    root, data, config = cls_setup
    with tempfile.TemporaryDirectory() as scratch:
        work = {'config_folder': osp.dirname(config), 'inside_data': osp.join(data, 'train', name),
                'data_root': data, 'contains_data': root}.get(kind, osp.join(scratch, name))
        if kind == 'link_to_dir':
            os.makedirs(osp.join(scratch, 'real'))
            os.symlink(osp.join(scratch, 'real'), work)
        elif kind == 'file':
            with open(work, 'w') as f:
                f.write('notes')
        elif kind in ('fifo', 'device', 'socket'):
            make_kind(kind, scratch, name, b'')
            work = osp.join(scratch, 'out', name)
        before = snapshot(root), snapshot(scratch)
        code, err = run_in_process('pretrain', [config, '--work-dir', work])
        assert_one_error_line(code, err)
        assert (snapshot(root), snapshot(scratch)) == before  # no file anywhere, none in the data root
