"""The one error boundary (tool_boundary.run_tool and ToolArgumentParser) around every entry point.

Generated command lines for every tool (unknown flags, bad choices, a flag without its value, numbers
out of range, NaN, huge, not numbers, missing input files) run in this process through the tool's
``main`` under ``run_tool``: each example must end with exit status 1 and exactly one stderr line,
``error: ...``, with no traceback text, and write nothing. A traceback cannot hide: ``run_tool``
re-raises anything that is not a user error, which fails the example. One example per tool then runs
as a real command line; a data-loader worker's user error and tools/dist_train.sh's filter are tested
on their own. Example counts: the 'ci' Hypothesis profile (tests/conftest.py); ``--hypothesis-profile
long`` for a long local run.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.util
import io
import math
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from torch.utils.data import DataLoader, Dataset

from scale_helpers import REPO, child_env
from tool_boundary import ToolArgumentParser, finite_float, float_range, int_range, run_tool
from user_errors import PreflightError, UserInputError

CLS = osp.join(REPO, 'configs', 'cls', 'resnet50d_cosine.py')
DET = osp.join(REPO, 'configs', 'det', 'faster-rcnn_r18d-tiny_fpn_voc-cpu.py')
SEG = osp.join(REPO, 'configs', 'seg', 'fcn_r18d-tiny_ade20k-cpu.py')
U32 = 2 ** 32 - 1


@pytest.fixture(scope='module')
def scratch(tmp_path_factory):
    """An empty folder for the tools' output paths and missing inputs: it must stay empty."""
    return str(tmp_path_factory.mktemp('boundary'))


def _spec(scratch: str) -> dict:
    """Per tool: the arguments that make a valid command line apart from the generated mistake, the
    numeric flags with their (lo, hi) range, flags with choices, and missing-input command lines."""
    s = lambda name: osp.join(scratch, name)  # noqa: E731
    return {
        'pretrain': dict(base=[CLS, '--work-dir', s('w')], ranges={'--world-size': (1, 65536)},
                         choices={'--launcher': ['none', 'pytorch', 'slurm', 'mpi']},
                         missing=lambda m: [m + '.py', '--work-dir', s('w')]),
        'test_cls': dict(base=[CLS, s('ckpt.pth'), '--work-dir', s('w')], float_ranges={'--crop-ratio': (0.1, 1)},
                         missing=lambda m: [CLS, m + '.pth', '--work-dir', s('w')]),
        'test_det': dict(base=[DET, s('ckpt.pth'), '--work-dir', s('w')], choices={'--eval-mode': ['11points', 'area']},
                         missing=lambda m: [DET, m + '.pth', '--work-dir', s('w')]),
        'test_seg': dict(base=[SEG, s('ckpt.pth'), '--work-dir', s('w')],
                         missing=lambda m: [m + '.py', s('ckpt.pth'), '--work-dir', s('w')]),
        'train_det': dict(base=[DET, '--work-dir', s('w')], choices={'--eval-mode': ['11points', 'area']},
                          missing=lambda m: [DET, '--work-dir', s('w'), '--pretrained', m + '.pth']),
        'train_seg': dict(base=[SEG, '--work-dir', s('w')],
                          missing=lambda m: [m + '.py', '--work-dir', s('w')]),
        'export_backbone': dict(base=[s('ckpt.pth'), s('out.pth')], missing=lambda m: [m + '.pth', s('out.pth')]),
        'export_onnx': dict(base=[CLS, s('ckpt.pth'), s('m.onnx')], ranges={'--size': (8, 4096)},
                            missing=lambda m: [CLS, m + '.pth', s('m.onnx')]),
        'convert_weights': dict(base=[s('src.pth'), s('out.pth')],
                                choices={'--depth': ['18', '34', '50', '101', '152'], '--variant': list('ABCD')},
                                missing=lambda m: [m + '.pth', s('out.pth')]),
        'plot_lr': dict(base=[CLS, '--out', s('lr.png')],
                        ranges={'--iters-per-epoch': (1, 100_000), '--world-size': (1, 65536)},
                        missing=lambda m: [m + '.py', '--out', s('lr.png')]),
        'plot_schedules': dict(base=[s('run'), '--out', s('f3.png')], missing=lambda m: [m, '--out', s('f3.png')]),
        'plot_logit_gap': dict(base=['--from-gaps', s('gaps.json'), '--out', s('f4.png')],
                               missing=lambda m: ['--from-gaps', m + '.json', '--out', s('f4.png')]),
        'model_table': dict(base=[], ranges={'--size': (32, 1024)},
                            choices={'--depth': ['18', '34', '50', '101', '152']}),
        'transfer_grid': dict(base=['--work-dir', s('grid'), '--out', s('grid_out')], ranges={'--seeds': (0, U32)},
                              missing=lambda m: ['--from-results', m + '.json', '--out', s('grid_out')]),
        'prepare_fashion': dict(base=['--out', s('fashion')],
                                ranges={'--scenes-train': (1, 100_000), '--scenes-val': (1, 100_000),
                                        '--scene-size': (56, 4096), '--seed': (0, U32), '--limit': (1, None),
                                        '--train-limit': (1, None)}),
        'benchmark_data': dict(base=[], ranges={'--images': (1, 100_000), '--batch': (1, 1024), '--rounds': (1, 1000),
                                                '--size': (1, 1024)},
                               choices={'--device': ['cpu', 'cuda']}, missing=lambda m: ['--data', m]),
        'benchmark_e2e': dict(base=[], ranges={'--batch': (1, 1024), '--workers': (0, 256), '--iters': (1, 100_000),
                                               '--skip': (0, 23), '--rounds': (1, 1000), '--classes': (1, 1000)},
                              missing=lambda m: ['--config', m + '.py']),
        'benchmark_train': dict(base=[], ranges={'--batch': (1, 1024), '--warmup': (0, 1000), '--iters': (1, 10_000),
                                                 '--size': (32, 1024)}),
        'gpu_check': dict(base=['--dry-run', '--dry-run-dir', s('gpu')], float_ranges={'--budget': (1, 86400)}),
    }


TOOLS = list(_spec('/x'))
_MODULES: dict = {}


def tool_main(name: str):
    """The tool's ``main``, its file loaded by path (as ``python tools/<name>.py`` runs it, but once)."""
    if name not in _MODULES:
        spec = importlib.util.spec_from_file_location(f'_boundary_{name}', osp.join(REPO, 'tools', f'{name}.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _MODULES[name] = module
    return _MODULES[name].main


def run_in_process(name: str, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run_tool(tool_main(name), argv)
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


def assert_one_error(code, out: str, err: str, *words: str) -> str:
    assert code == 1, (code, out[-2000:], err[-2000:])
    assert 'Traceback' not in out + err, err[-3000:]
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err[-3000:]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- generated mistakes ----------------------------------------------------------------------------
def _in_range(text: str, lo, hi) -> bool:
    try:
        value = int(text)
    except ValueError:
        return False
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def _in_float_range(text: str, lo: float, hi: float) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and lo <= value <= hi


def bad_float(lo: float, hi: float) -> st.SearchStrategy[str]:
    """Text that is not a finite number in [lo, hi]: NaN, inf, below, above, huge, not a number."""
    words = ['nan', 'NaN', '-nan', 'inf', '-inf', 'infinity', '1e999', '', 'fast', '9' * 5000]
    return st.one_of(st.sampled_from(words),
                     st.floats(max_value=lo, exclude_max=True).map(repr),
                     st.floats(min_value=hi, exclude_min=True).map(repr),
                     st.text(max_size=12)).filter(lambda text: not _in_float_range(text, lo, hi))


def bad_int(lo: int | None, hi: int | None) -> st.SearchStrategy[str]:
    """Text that is not an integer in [lo, hi]: below, above, huge, NaN, inf, a float, not a number."""
    options = [st.sampled_from(['nan', 'NaN', 'inf', '-inf', '1e3', '2.5', '', ' ', 'ten', '0x10', '9' * 5000]),
               st.text(max_size=12)]
    if lo is not None:
        options.append(st.integers(max_value=lo - 1).map(str))
    if hi is not None:
        options += [st.integers(min_value=hi + 1).map(str), st.integers(min_value=hi + 1, max_value=10 ** 40).map(str)]
    return st.one_of(options).filter(lambda text: not _in_range(text, lo, hi))


def _a_choice(text: str, choices: list[str]) -> bool:
    """Whether argparse takes ``text`` for one of ``choices`` (for int choices after int(): ' 18' is 18)."""
    try:
        return text in choices or str(int(text)) in choices
    except ValueError:
        return False


FLAG_NAME = st.from_regex(r'[a-z][a-z0-9-]{0,10}', fullmatch=True)


@st.composite
def mistake(draw, spec: dict) -> tuple[list[str], tuple[str, ...]]:
    """One wrong command line of a tool, and words its error line must contain."""
    kinds = ['unknown_flag']
    ranges = {**spec.get('ranges', {}), **spec.get('float_ranges', {})}
    if ranges:
        kinds += ['range', 'range', 'missing_value']
    if spec.get('choices'):
        kinds.append('choice')
    if spec.get('missing'):
        kinds.append('missing_file')
    kind = draw(st.sampled_from(kinds))
    base = list(spec['base'])
    if kind == 'unknown_flag':  # a prefix no option starts with: argparse's abbreviations cannot match it
        flag = '--zz-' + draw(FLAG_NAME)
        return base + [flag], ('unrecognized arguments', flag)
    if kind == 'range':
        flag = draw(st.sampled_from(sorted(ranges)))
        bad = bad_float if flag in spec.get('float_ranges', {}) else bad_int
        value = draw(bad(*ranges[flag]))
        return base + [f'{flag}={value}'], (flag,)
    if kind == 'missing_value':
        flag = draw(st.sampled_from(sorted(ranges)))
        return base + [flag], (flag, 'expected')
    if kind == 'choice':
        flag = draw(st.sampled_from(sorted(spec['choices'])))
        value = draw(st.text(max_size=8).filter(lambda v: not _a_choice(v, spec['choices'][flag])))
        return base + [f'{flag}={value}'], (flag,)  # 'invalid choice', or 'invalid int value' for --depth
    name = draw(st.from_regex(r'[A-Za-z0-9_-]{1,12}', fullmatch=True))
    return spec['missing'](osp.join(spec['base_dir'], 'missing_' + name)), ()


@pytest.fixture(scope='module', autouse=True)
def _no_traceback_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv('BAGTRICKS_TRACEBACK', raising=False)
        yield


@pytest.mark.parametrize('name', TOOLS)
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_mistake_is_one_error_line(name, scratch, data):
    spec = dict(_spec(scratch)[name], base_dir=scratch)
    argv, words = data.draw(mistake(spec), label='argv')
    code, out, err = run_in_process(name, argv)
    assert_one_error(code, out, err, *words)
    assert os.listdir(scratch) == [], os.listdir(scratch)  # nothing written, no work dir made


@pytest.mark.parametrize('name', TOOLS)
def test_help_still_prints_and_exits_0(name):
    code, out, err = run_in_process(name, ['--help'])
    assert code == 0 and out.startswith('usage:') and err == '', (code, out[:500], err[-500:])


# -- the real command line -------------------------------------------------------------------------
def _one_real_example(name: str, scratch: str) -> list[str]:
    spec = _spec(scratch)[name]
    ranges = {**spec.get('ranges', {}), **spec.get('float_ranges', {})}
    if ranges:
        flag, (lo, _) = sorted(ranges.items())[0]
        return spec['base'] + [f'{flag}={lo - 1}']
    return spec['base'] + ['--zz-not-an-option']


# the tools whose interpreter start-up is cheap, and pretrain for those that import the engine (the same
# __main__ line, checked for every tool below)
REAL = ['pretrain', 'plot_lr', 'prepare_fashion', 'benchmark_data', 'benchmark_e2e', 'benchmark_train', 'gpu_check']


def test_cheap_tools_from_a_real_command_line(scratch):
    """One mistake per tool as a real process: exit status 1 and one ``error:`` line, as in-process."""
    def run(name):
        argv = _one_real_example(name, scratch)
        return name, argv, subprocess.run([sys.executable, osp.join(REPO, 'tools', f'{name}.py'), *argv], cwd=REPO,
                                          env=child_env(), capture_output=True, text=True, timeout=300)
    with ThreadPoolExecutor(max_workers=2) as pool:  # interpreter start-ups dominate: overlap them
        results = list(pool.map(run, REAL))
    for name, argv, proc in results:
        line = assert_one_error(proc.returncode, proc.stdout, proc.stderr)
        assert argv[-1].split('=')[0] in line, (name, line)
    assert os.listdir(scratch) == []


@pytest.mark.parametrize('name', TOOLS)
def test_every_tools_main_runs_inside_the_boundary(name):
    """``python tools/<name>.py`` runs ``run_tool(main)``: the whole ``if __name__ == '__main__'`` block."""
    with open(osp.join(REPO, 'tools', f'{name}.py'), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    blocks = [node for node in tree.body
              if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"]
    assert len(blocks) == 1
    assert [ast.unparse(n) for n in blocks[0].body] in (['run_tool(main)'], ['tool_boundary.run_tool(main)'],
                                                        ['sys.exit(run_tool(main))'])  # gpu_check: main's status


# -- a data-loader worker's user error -------------------------------------------------------------
class _Unreadable(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        try:
            raise KeyError(index)
        except KeyError as e:  # a chained cause: the worker's traceback text then holds two exceptions
            raise PreflightError(f'image {index} of class "cat"\ndoes not decode; fix or remove the file') from e


class _Missing(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise FileNotFoundError(2, 'No such file or directory', f'/data/train/cat/{index}.jpg')


def _iterate(dataset):
    def main(argv=None):
        for _ in DataLoader(dataset, batch_size=1, num_workers=1):
            pass
    return main


@pytest.mark.parametrize('dataset, expected', [
    (_Unreadable(), 'error: image 0 of class "cat" does not decode; fix or remove the file'),
    (_Missing(), "error: [Errno 2] No such file or directory: '/data/train/cat/0.jpg'"),
])
def test_a_data_loader_workers_user_error_is_its_own_one_line(dataset, expected, capsys):
    """torch re-raises it in the main process with the worker's whole traceback as its message; the
    boundary prints the worker's own message only."""
    with pytest.raises(SystemExit) as exit_:
        run_tool(_iterate(dataset))
    captured = capsys.readouterr()
    assert exit_.value.code == 1
    assert captured.err == expected + '\n'
    assert 'Traceback' not in captured.err and 'worker process' not in captured.err


def test_a_bug_keeps_its_traceback():
    def main(argv=None):
        return 1 / 0
    with pytest.raises(ZeroDivisionError):
        run_tool(main)


# -- the argparse types ----------------------------------------------------------------------------
@settings(deadline=None)
@given(lo=st.integers(-10 ** 6, 10 ** 6), width=st.integers(0, 10 ** 6), value=st.integers(-10 ** 7, 10 ** 7))
def test_int_range_takes_exactly_its_range(lo, width, value):
    hi = lo + width
    parse = int_range(lo, hi)
    if lo <= value <= hi:
        assert parse(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=f'expected an integer from {lo} to {hi}'):
            parse(str(value))


@settings(deadline=None)
@given(text=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=10),
                      st.sampled_from(['nan', 'inf', '-inf', '1e999', '-1e999', 'NaN'])))
def test_finite_float_refuses_nan_inf_and_text(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None and math.isfinite(value):
        assert finite_float(text) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match='expected a finite number'):
            finite_float(text)


@settings(deadline=None)
@given(value=st.floats(allow_nan=True))
def test_float_range_bounds(value):
    parse = float_range(0.0, 1.0)
    if 0.0 <= value <= 1.0:
        assert parse(repr(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError, match='expected a finite number from 0.0 to 1.0'):
            parse(repr(value))


def test_parser_error_is_one_config_error_naming_the_flag():
    parser = ToolArgumentParser(prog='tool')
    parser.add_argument('--batch', type=int_range(1, 8))
    with pytest.raises(UserInputError) as e:
        parser.parse_args(['--batch', '9' * 5000])
    assert str(e.value).startswith("argument --batch: '99999") and 'expected an integer from 1 to 8' in str(e.value)
    assert len(str(e.value)) < 200 and '\n' not in str(e.value)


# -- tools/dist_train.sh ---------------------------------------------------------------------------
def _fake_python(path: str, stderr_lines: list[str], status: int) -> str:
    """A PYTHON for dist_train.sh whose ``-m torch.distributed.run`` prints like torchrun after failed
    children (each child's line, then torchrun's own report) and exits with ``status``."""
    lines = '\n'.join(f'echo {line!r} >&2' for line in stderr_lines)
    with open(path, 'w') as f:
        f.write(f'#!/bin/bash\n[ "$1" = -c ] && exit 0\necho "training log"\n{lines}\nexit {status}\n')
    os.chmod(path, 0o755)
    return path


def _dist(python: str) -> subprocess.CompletedProcess:
    return subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_train.sh'), 'pretrain', CLS, '2'], cwd=REPO,
                          env=child_env(PYTHON=python), capture_output=True, text=True, timeout=60)


def test_dist_train_a_childs_user_error_is_one_line_and_exit_status_1(tmp_path):
    torchrun_report = ['Traceback (most recent call last):', 'torch.distributed.elastic.multiprocessing.errors.'
                       'ChildFailedError:', 'tools/pretrain.py FAILED']
    fake = _fake_python(str(tmp_path / 'py'), ['W Setting OMP_NUM_THREADS', 'error: rank 0: bad config',
                                               'error: rank 1: bad config', 'error: rank 0: bad config',
                                               *torchrun_report], status=3)
    proc = _dist(fake)
    assert proc.returncode == 1  # not torchrun's 3
    assert proc.stderr.splitlines() == ['W Setting OMP_NUM_THREADS', 'error: rank 0: bad config']
    assert proc.stdout == 'training log\n'
    # a crash (no user error) keeps torchrun's report and status
    crash = _dist(_fake_python(str(tmp_path / 'py2'), torchrun_report, status=3))
    assert crash.returncode == 3 and crash.stderr.splitlines() == torchrun_report
