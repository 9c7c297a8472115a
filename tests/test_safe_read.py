"""The reading layer (safe_read), by property: for *generated* hostile inputs of each kind read from outside
(checkpoints, the config text they store, ``last_checkpoint``, results / grid / logit-gap / scalars JSON), the
outcome is one user error naming the file, or a value of the declared kind; never another exception, and
never anything run (a sentinel file the hostile payloads would create never appears).

Example counts come from the Hypothesis profile in conftest.py ('ci': 25); the tool-level properties, which
run a tool in this process per example, use fewer. A real training checkpoint written by mmengine's Runner
(pretrain, one epoch) is the base of the checkpoint mutations."""
from __future__ import annotations

import io
import json
import math
import os
import os.path as osp
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings, strategies as st

import safe_read
from backbones.checkpoint import backbone_cfg_from_meta, check_fits, check_model_fits
from cls_helpers import make_shapes_imagenet
from scale_helpers import REPO, child_env, cls_config
from test_bad_input_more import run_in_process
from user_errors import CheckpointError, UserInputError



# -- helpers ---------------------------------------------------------------------------------------------
def _unicode(text: str) -> bytes:
    data = text.encode('utf-8')
    return b'X' + struct.pack('<I', len(data)) + data


def _call(module: str, name: str, arg: str) -> bytes:
    """Pickle opcodes (protocol 2, no PROTO/STOP) for ``module.name(arg)``."""
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n' + _unicode(arg) + b'\x85R'


def _in_checkpoint(value: bytes) -> bytes:
    """A whole pickle: {'state_dict': {}, 'x': <value>}."""
    return b'\x80\x02}(' + _unicode('state_dict') + b'}' + _unicode('x') + value + b'u.'


def _zip(data_pkl: bytes) -> bytes:
    """A torch-style zip checkpoint around ``data_pkl``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', data_pkl)
        z.writestr('archive/byteorder', 'little')
        z.writestr('archive/version', '3\n')
    return buf.getvalue()


def _legacy(data_pkl: bytes) -> bytes:
    """torch's legacy (non-zip) format: magic number, protocol version, sys info, the object, storage keys."""
    from torch.serialization import MAGIC_NUMBER, PROTOCOL_VERSION
    head = b''.join(pickle.dumps(x, protocol=2) for x in (MAGIC_NUMBER, PROTOCOL_VERSION, {'little_endian': True}))
    return head + data_pkl + pickle.dumps([], protocol=2)


CONTAINERS = {'zip': _zip, 'legacy': _legacy, 'raw': lambda data: data}


def _write(folder: str, name: str, blob: bytes) -> str:
    path = osp.join(folder, name)
    with open(path, 'wb') as f:
        f.write(blob)
    return path


def _patch_zip_member(blob: bytes, member: str, data: bytes) -> bytes:
    """``blob`` (a stored zip) with ``member``'s bytes replaced by ``data`` of the same length, CRCs fixed."""
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        info = z.getinfo(member)
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size == len(data)
    out = bytearray(blob)
    name_len, extra_len = struct.unpack('<HH', out[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    out[start:start + len(data)] = data
    crc = struct.pack('<I', zlib.crc32(data))
    out[info.header_offset + 14:info.header_offset + 18] = crc
    pos, key = 0, member.encode()
    while True:  # this member's central directory entry
        pos = out.index(b'PK\x01\x02', pos)
        n = struct.unpack('<H', out[pos + 28:pos + 30])[0]
        if bytes(out[pos + 46:pos + 46 + n]) == key:
            out[pos + 16:pos + 20] = crc
            return bytes(out)
        pos += 4


class _Reduce:
    """Pickles as ``func(*args)`` with an optional BUILD ``state``: hand-made numpy / mmengine payloads."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


@pytest.fixture(scope='module')
def real(tmp_path_factory):
    """A training checkpoint written by mmengine's Runner (tools/pretrain.py, one epoch), and its bytes."""
    root = tmp_path_factory.mktemp('safe_read')
    data = make_shapes_imagenet(str(root / 'data'), num_classes=3, per_class={'train': 2}, size=36)
    cfg = cls_config(str(root / 'cls.py'), data, num_classes=3, batch=6, epochs=1)
    code, err = run_in_process('pretrain', cfg, '--work-dir', root / 'work')
    assert code == 0, err[-3000:]
    path = str(root / 'work' / 'epoch_1.pth')
    with open(path, 'rb') as f:
        blob = f.read()
    with zipfile.ZipFile(path) as z:
        member = next(n for n in z.namelist() if n.endswith('/data.pkl'))
        data_pkl = z.read(member)
    return dict(root=root, cfg=cfg, path=path, blob=blob, member=member, data_pkl=data_pkl)


# -- the allow-list --------------------------------------------------------------------------------------
def test_the_allow_list_is_exact_and_explained(real):
    names = safe_read.ALLOWED_GLOBALS
    assert all(n.count('.') >= 1 and '*' not in n and not n.endswith('.') for n in names)
    assert not [n for n in names if n.startswith('numpy.dtypes')]  # dtypes are rebuilt from their code
    from torch._weights_only_unpickler import _get_allowed_globals  # torch's own table resolves these
    assert set(safe_read.TORCH_GLOBALS) <= set(_get_allowed_globals())
    # what a real mmengine training checkpoint names is inside the list, and it reads back exactly
    _, found = safe_read._scan_pickle(real['data_pkl'], 0, [safe_read.MAX_PICKLE_OPS])
    assert found <= names and 'mmengine.logging.history_buffer.HistoryBuffer' in found
    from mmengine.logging.history_buffer import HistoryBuffer
    table = dict(HistoryBuffer._statistics_methods)
    ours = safe_read.load_training_state(real['path'])
    ref = torch.load(real['path'], weights_only=False)  # our own file, written just now
    assert HistoryBuffer._statistics_methods == table
    for key, buf in ref['message_hub']['log_scalars'].items():
        got = ours['message_hub']['log_scalars'][key]
        assert type(got) is HistoryBuffer and got.max_length == buf.max_length
        assert np.array_equal(got._log_history, buf._log_history) and got._log_history.dtype == buf._log_history.dtype
        assert np.array_equal(got._count_history, buf._count_history) and got.mean() == buf.mean()
    for key, value in ref['message_hub']['runtime_info'].items():
        assert type(ours['message_hub']['runtime_info'][key]) is type(value)
        assert ours['message_hub']['runtime_info'][key] == value
    assert all(torch.equal(ours['state_dict'][k], v) for k, v in ref['state_dict'].items())
    assert ours['meta']['epoch'] == 1 and ours.keys() == ref.keys()


# -- hostile pickles ---------------------------------------------------------------------------------------
def _dangerous(sentinel: str) -> list[tuple[str, str, str]]:
    shell = f'touch {sentinel}'
    code = f"__import__('os').system({shell!r})"
    return [('os', 'system', shell), ('posix', 'system', shell), ('builtins', 'eval', code),
            ('builtins', 'exec', code), ('__builtin__', 'eval', code), ('builtins', '__import__', 'antigravity'),
            ('importlib', 'import_module', 'antigravity'), ('subprocess', 'getoutput', shell),
            ('numpy', 'load', sentinel), ('numpy', 'fromfile', sentinel), ('numpy.testing', 'assert_', 'x'),
            ('numpy.dtypes', 'Float64DType', 'f8'), ('numpy.dtypes', 'ObjectDType', 'O'),
            ('numpy.lib.format', 'read_array', sentinel), ('torch', 'load', sentinel), ('torch.hub', 'load', 'x'),
            ('torch.jit', 'load', sentinel), ('torch._utils', '_rebuild_meta_tensor_no_storage', 'x'),
            ('builtins', 'set', 'x'), ('torch', 'Size', 'x'), ('collections', 'OrderedDict.fromkeys', 'x'),
            ('mmengine.config', 'Config.fromstring', code),
            ('mmengine.logging.history_buffer', 'HistoryBuffer.register_statistics', 'x')]


IDENT = st.from_regex(r'[A-Za-z_][A-Za-z0-9_]{0,12}', fullmatch=True)


@given(pick=st.integers(0, 22), random_name=st.tuples(st.lists(IDENT, min_size=1, max_size=3), IDENT),
       use_random=st.booleans(), container=st.sampled_from(sorted(CONTAINERS)))
def test_a_pickle_naming_any_other_global_is_refused_and_nothing_runs(pick, random_name, use_random, container):
    with tempfile.TemporaryDirectory() as tmp:
        sentinel = osp.join(tmp, 'RAN')
        if use_random:
            module, name, arg = '.'.join(random_name[0]), random_name[1], f'touch {sentinel}'
        else:
            module, name, arg = _dangerous(sentinel)[pick]
        full = safe_read._global_name(module.encode(), name.encode())
        assume(full not in safe_read.ALLOWED_GLOBALS)
        before = set(sys.modules)
        path = _write(tmp, 'evil.pth', CONTAINERS[container](_in_checkpoint(_call(module, name, arg))))
        for load in (safe_read.load_weights_file, safe_read.load_training_state):
            with pytest.raises(CheckpointError, match=r'refusing to unpickle|not a readable torch') as e:
                load(path)
            assert path in str(e.value) and repr(full) in str(e.value)
        assert not osp.exists(sentinel)
        assert module.split('.')[0] not in set(sys.modules) - before  # the named module was not even imported


@given(depth=st.integers(safe_read.MAX_DEPTH + 1, 3000), kind=st.sampled_from(['list', 'dict', 'tuple']),
       container=st.sampled_from(['zip', 'legacy']))
def test_deep_or_cyclic_objects_are_refused(depth, kind, container):
    if kind == 'list':
        value = b']' * depth + b'a' * (depth - 1)
    elif kind == 'dict':
        value = (b'}' + _unicode('k')) * (depth - 1) + b'}' + b's' * (depth - 1)
    else:
        value = b')' + b'\x85' * (depth - 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, 'deep.pth', CONTAINERS[container](_in_checkpoint(value)))
        with pytest.raises(CheckpointError, match=f'nested deeper than {safe_read.MAX_DEPTH} levels'):
            safe_read.load_weights_file(path)
        cyclic = _write(tmp, 'cycle.pth', _zip(_in_checkpoint(b']q\x00h\x00a')))  # a list holding itself
        with pytest.raises(CheckpointError, match='a container that holds itself'):
            safe_read.load_weights_file(cyclic)
        ok = _write(tmp, 'ok.pth', _zip(_in_checkpoint(b']' * 40 + b'a' * 39)))
        assert isinstance(safe_read.load_weights_file(ok)['x'], list)


@given(declared=st.integers(2 ** 20, 2 ** 32 - 1), ops=st.integers(1001, 5000))
def test_huge_looking_pickles_are_refused_before_they_are_built(declared, ops):
    limits = safe_read.MAX_PICKLE_OPS, safe_read.MAX_PICKLE_BYTES
    with tempfile.TemporaryDirectory() as tmp:
        # a string that claims more bytes than the file has
        short = _write(tmp, 'short.pth', _zip(b'\x80\x02X' + struct.pack('<I', declared) + b'abc.'))
        with pytest.raises(CheckpointError, match='ends in the middle of a pickle'):
            safe_read.load_weights_file(short)
        # a zip directory that declares a data.pkl larger than the limit
        blob = bytearray(_zip(_in_checkpoint(b'N')))
        pos = blob.index(b'PK\x01\x02')
        blob[pos + 24:pos + 28] = struct.pack('<I', safe_read.MAX_PICKLE_BYTES + 1 + declared % 2 ** 20)
        big = _write(tmp, 'big.pth', bytes(blob))
        with pytest.raises(CheckpointError, match='more than the 256 MiB'):
            safe_read.load_weights_file(big)
        # more opcodes than the limit, and a legacy pickle longer than the byte limit (both lowered here)
        many = _write(tmp, 'many.pth', _zip(_in_checkpoint(b']' + b'Na' * ops)))
        long = _write(tmp, 'long.pth', _legacy(_in_checkpoint(_unicode('x' * (ops + 1000)))))
        try:
            safe_read.MAX_PICKLE_OPS = 1000
            with pytest.raises(CheckpointError, match='more than 1,000 opcodes'):
                safe_read.load_weights_file(many)
            safe_read.MAX_PICKLE_OPS, safe_read.MAX_PICKLE_BYTES = limits[0], 1000
            with pytest.raises(CheckpointError, match='larger than 1,000 bytes'):
                safe_read.load_weights_file(long)
        finally:
            safe_read.MAX_PICKLE_OPS, safe_read.MAX_PICKLE_BYTES = limits


@given(blob=st.binary(min_size=1, max_size=4096),
       prefix=st.sampled_from([b'', b'PK\x03\x04', b'\x80\x02', b'\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.']))
def test_random_bytes_are_one_checkpoint_error(blob, prefix):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, 'random.pth', prefix + blob)
        for load in (safe_read.load_weights_file, safe_read.load_training_state):
            try:
                load(path)
            except CheckpointError as e:
                assert path in str(e)
            # a random file may, rarely, be a readable pickle of plain data: then it is plain data


@given(data=st.data())
def test_any_corruption_of_a_real_checkpoint_is_plain_data_or_one_error(real, data):
    pkl = bytearray(real['data_pkl'])
    for _ in range(data.draw(st.integers(1, 8), label='flips')):
        at = data.draw(st.integers(0, len(pkl) - 1), label='at')
        pkl[at] = data.draw(st.integers(0, 255), label='byte')
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, 'mutated.pth', _patch_zip_member(real['blob'], real['member'], bytes(pkl)))
        try:
            ckpt = safe_read.load_training_state(path)
        except CheckpointError as e:
            assert path in str(e)
        else:  # what loads is plain data of the shape --resume needs
            assert ckpt['meta']['epoch'] >= 0 and isinstance(ckpt['state_dict'], dict)



# -- numpy and mmengine stand-ins ---------------------------------------------------------------------------
def _numpy_payloads():
    from numpy._core.multiarray import _reconstruct, scalar
    f8 = (3, '<', None, None, None, -1, -1, 0)
    return {
        'dtype claiming to hold objects': _Reduce(np.dtype, ('f8', False, True), (3, '<', None, None, None, -1, -1, 63)),
        'object dtype': _Reduce(np.dtype, ('O', False, True), (3, '|', None, None, None, -1, -1, 63)),
        'void dtype of 1 GB': _Reduce(np.dtype, ('V1000000000', False, True), (3, '|', None, None, None, -1, -1, 0)),
        'dtype singleton (copy=False)': _Reduce(np.dtype, ('f8', False, False), (3, '>', None, None, None, -1, -1, 0)),
        'subarray dtype state': _Reduce(np.dtype, ('f8', False, True), (3, '<', (np.dtype('f8'), (5,)), None, None, -1, -1, 0)),
        'huge empty array': _Reduce(_reconstruct, (np.ndarray, (10 ** 12,), b'b')),
        'array with too few bytes': _Reduce(_reconstruct, (np.ndarray, (0,), b'b'),
                                            (1, (1000,), _Reduce(np.dtype, ('f8', False, True), f8), False, b'\0' * 8)),
        'ndarray called directly': _Reduce(np.ndarray, ((10 ** 10,), 'f8')),
        'scalar of the wrong size': _Reduce(scalar, (_Reduce(np.dtype, ('f8', False, True), f8), b'\0' * 3)),
    }


@given(case=st.sampled_from(sorted(_numpy_payloads())))
def test_numpy_payloads_are_rebuilt_only_as_plain_numeric_data(case):
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'np.pth')
        torch.save({'state_dict': {}, 'x': _numpy_payloads()[case]}, path)
        with pytest.raises(CheckpointError, match='refusing to unpickle|not plain data') as e:
            safe_read.load_weights_file(path)
        assert path in str(e.value)
    assert np.dtype('f8').byteorder == '=' and not np.dtype('f8').hasobject


@given(key=st.sampled_from(['evil', 'mean', 'min']), method=st.sampled_from(['mean', 'max', 'current']))
def test_a_history_buffer_cannot_change_the_statistics_table(key, method):
    from mmengine.logging.history_buffer import HistoryBuffer
    assume(key != method)
    table = dict(HistoryBuffer._statistics_methods)
    buf = HistoryBuffer([1.0, 2.0], [1, 1])
    HistoryBuffer._statistics_methods[key] = getattr(HistoryBuffer, method)  # what a crafted file would carry
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = osp.join(tmp, 'hb.pth')
            torch.save({'state_dict': {}, 'message_hub': {'log_scalars': {'loss': buf}}}, path)
            HistoryBuffer._statistics_methods.clear()
            HistoryBuffer._statistics_methods.update(table)
            with pytest.raises(CheckpointError, match='statistics methods other than min, max, current, mean'):
                safe_read.load_weights_file(path)
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(table)
    assert HistoryBuffer._statistics_methods == table


# -- weights loaded into a model ---------------------------------------------------------------------------
def _small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.Linear(4, 2))


FLOAT_KEYS = [k for k, v in _small_model().state_dict().items() if v.is_floating_point()]


@given(key=st.sampled_from(FLOAT_KEYS), bad=st.sampled_from(['nan', 'inf', '-inf', 'int64', 'int32', 'uint8', 'bool']),
       at=st.integers(0, 10 ** 6))
def test_weights_must_be_floating_point_and_finite(key, bad, at):
    model = _small_model()
    target = model.state_dict()
    state = {k: v.clone() for k, v in target.items()}
    if bad in ('nan', 'inf', '-inf'):
        state[key].view(-1)[at % state[key].numel()] = float(bad)
    else:
        state[key] = state[key].to(getattr(torch, bad))
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'w.pth')
        torch.save(state, path)
        loaded = safe_read.load_weights_file(path)  # reading is fine: the values are judged where they are loaded
        for check in (lambda: check_fits(loaded, target, 'the model', path),
                      lambda: check_model_fits(model, {'state_dict': loaded}, path)):
            with pytest.raises(CheckpointError, match=rf'{key} (holds|is {bad})'):
                check()
    # integer buffers stay integer, finite floats pass; complex weights are not even read
    check_fits({k: v.clone() for k, v in target.items()}, target, 'the model', 'same')
    assert target['1.num_batches_tracked'].dtype == torch.int64
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'c.pth')
        torch.save({key: target[key].to(torch.complex64)}, path)
        with pytest.raises(CheckpointError, match="refusing to unpickle 'torch.ComplexFloatStorage'"):
            safe_read.load_weights_file(path)


# -- the config text a checkpoint stores ---------------------------------------------------------------------
NESTINGS = {'unary minus': ('-', ''), 'not': ('not ', ''), 'parentheses': ('(', ')'), 'tuples': ('(', ',)'),
            'lists': ('[', ']'),
            'dict calls': ('dict(a=', ')'), 'sums': ('1+', ''), 'attributes': ('a.', '')}


@given(kind=st.sampled_from(sorted(NESTINGS)), depth=st.integers(safe_read.MAX_CONFIG_DEPTH + 2, 200_000))
def test_stored_config_text_nested_beyond_the_limit_is_one_error(kind, depth):
    open_, close = NESTINGS[kind]
    if kind == 'parentheses':  # (((1))) is 1: plain parentheses only fail past the tokenizer's 200 levels
        depth = max(depth, 201)
    inner = open_ * depth + '1' + close * depth
    text = f"model = dict(type='BagClassifier', backbone=dict(type='BagResNet', depth=18, x={inner}))\n"
    with pytest.raises(CheckpointError, match=r'x\.pth: .*(nested|not literal data|too deeply|pass --config)'):
        backbone_cfg_from_meta({'meta': {'cfg': text}}, 'x.pth')


def test_stored_config_text_limits_and_a_plain_one():
    ok = "model = dict(backbone=dict(type='BagResNet', depth=18, variant='D', out_indices=(3, ), norm=[1, -2.5]))"
    assert backbone_cfg_from_meta({'meta': {'cfg': ok}}, 'x.pth')['out_indices'] == (3,)
    with pytest.raises(CheckpointError, match='more than 4,194,304'):
        backbone_cfg_from_meta({'meta': {'cfg': ok + '\n#' + 'x' * safe_read.MAX_CONFIG_TEXT}}, 'x.pth')
    with pytest.raises(CheckpointError, match='not literal data'):
        backbone_cfg_from_meta({'meta': {'cfg': "model = dict(backbone=dict(type=__import__('os').system('x')))"}},
                               'x.pth')


# -- the resume state ----------------------------------------------------------------------------------------
BAD_VALUES = st.one_of(st.integers(max_value=-1), st.integers(min_value=2 ** 32, max_value=2 ** 70), st.booleans(),
                       st.floats(allow_nan=True), st.text(max_size=8), st.none(), st.just([1]))


def _set(ckpt: dict, field: str, value):
    if field == 'meta.config':
        ckpt['meta']['config'] = value
    elif field.startswith('message_hub.'):
        part = field.split('.', 1)[1]
        if part == 'drop':
            del ckpt['message_hub']
        elif part in ('log_scalars', 'runtime_info', 'resumed_keys'):
            ckpt['message_hub'][part] = value
        elif part == 'resumed_keys.cfg':
            ckpt['message_hub']['resumed_keys']['cfg'] = value
        elif part == 'runtime_info.keep_ckpt_ids':
            ckpt['message_hub']['runtime_info']['keep_ckpt_ids'] = [value]
        elif part == 'log_scalars.loss':
            ckpt['message_hub']['log_scalars']['train/loss'] = value
    else:
        ckpt['meta'][field.split('.', 1)[1]] = value


FIELDS = ['meta.epoch', 'meta.iter', 'meta.seed', 'meta.teacher', 'meta.config', 'message_hub.log_scalars',
          'message_hub.runtime_info', 'message_hub.resumed_keys', 'message_hub.resumed_keys.cfg',
          'message_hub.runtime_info.keep_ckpt_ids', 'message_hub.log_scalars.loss', 'message_hub.drop']


@given(field=st.sampled_from(FIELDS), value=BAD_VALUES)
def test_a_resume_state_mmengine_would_misread_is_one_error(real, field, value):
    count = type(value) is int and value >= 0
    assume(not (field in ('meta.epoch', 'meta.iter', 'message_hub.runtime_info.keep_ckpt_ids') and count))
    assume(not (field == 'meta.seed' and (value is None or count and value < 2 ** 32)))
    assume(not (field == 'meta.teacher' and value is None))
    assume(not (field == 'message_hub.resumed_keys.cfg' and isinstance(value, bool)))
    if field == 'meta.config':
        value = f"import os\nos.system('touch {real['root'] / 'RAN'}')\n"  # what mmengine would execute
    ckpt = torch.load(real['path'], weights_only=False)  # our own file, written by the fixture
    _set(ckpt, field, value)
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'state.pth')
        torch.save(ckpt, path)
        with pytest.raises(CheckpointError) as e:
            safe_read.load_training_state(path)
    text = str(e.value)
    assert path in text
    leaf = field.split('.')[-1] if field != 'message_hub.drop' else 'message_hub'
    assert leaf.replace('loss', 'train/loss') in text or 'not plain data' in text, text
    assert not (real['root'] / 'RAN').exists()



# -- last_checkpoint ---------------------------------------------------------------------------------------
def _work_dir(tmp: str) -> str:
    work = osp.join(tmp, 'work')
    os.makedirs(osp.join(work, 'sub'))
    for name in ('epoch_1.pth', 'epoch_3.pth', osp.join('sub', 'iter_2.pth')):
        _write(work, name, b'x')
    _write(tmp, 'outside.pth', b'x')
    return work


def _read_last(work: str, content: bytes):
    _write(work, 'last_checkpoint', content)
    return safe_read.read_last_checkpoint(work)


@given(content=st.binary(max_size=safe_read.MAX_LAST_CHECKPOINT_BYTES + 64))
def test_any_last_checkpoint_bytes_give_a_file_inside_the_work_dir_or_one_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        work = _work_dir(tmp)
        try:
            chosen = _read_last(work, content)
        except CheckpointError as e:
            assert 'last_checkpoint' in str(e) and '\n' not in str(e)
        else:
            assert osp.isfile(chosen) and osp.commonpath([osp.realpath(chosen), osp.realpath(work)]) == \
                osp.realpath(work)


HOSTILE_NAMES = st.one_of(
    st.sampled_from(['', ' \n\t', 'epoch_1.pth\nepoch_3.pth', 'epoch_1.pth\x00', '../outside.pth', 'sub/../../outside.pth',
                     '..', 'missing.pth', 'sub', 'x' * 5000]),
    st.builds(lambda p: '/' + p, st.text(min_size=0, max_size=40)),  # absolute
    st.builds(lambda n: '../' * n + 'outside.pth', st.integers(1, 20)),
    st.builds(lambda t: t + '\x00' + t, st.text(max_size=10)),
)


@given(name=HOSTILE_NAMES)
def test_hostile_last_checkpoint_contents_are_one_error(name):
    with tempfile.TemporaryDirectory() as tmp:
        work = _work_dir(tmp)
        with pytest.raises(CheckpointError, match='last_checkpoint') as e:
            _read_last(work, name.encode('utf-8', 'surrogatepass'))
        assert 'pass --resume' in str(e.value) or 'expected one line' in str(e.value)


def test_last_checkpoint_files_and_links():
    with tempfile.TemporaryDirectory() as tmp:
        work = _work_dir(tmp)
        assert safe_read.read_last_checkpoint(osp.join(tmp, 'nowhere')) is None
        assert safe_read.read_last_checkpoint(work) is None
        assert _read_last(work, b'epoch_1.pth\n') == osp.join(work, 'epoch_1.pth')
        assert _read_last(work, b'sub/iter_2.pth') == osp.join(work, 'sub', 'iter_2.pth')
        with pytest.raises(CheckpointError, match=r"names 'gone\.pth', which does not exist; the newest .*epoch_3\.pth"):
            _read_last(work, b'gone.pth')
        os.symlink(osp.join(tmp, 'outside.pth'), osp.join(work, 'link.pth'))
        with pytest.raises(CheckpointError, match='outside the work dir'):
            _read_last(work, b'link.pth')
        os.remove(osp.join(work, 'last_checkpoint'))
        os.symlink(osp.join(tmp, 'outside.pth'), osp.join(work, 'last_checkpoint'))
        with pytest.raises(CheckpointError, match='is a symbolic link'):
            safe_read.read_last_checkpoint(work)
        os.remove(osp.join(work, 'last_checkpoint'))
        os.mkfifo(osp.join(work, 'last_checkpoint'))
        with pytest.raises(CheckpointError, match='not a regular file'):
            safe_read.read_last_checkpoint(work)  # does not block on the FIFO
        os.remove(osp.join(work, 'last_checkpoint'))
        os.mkdir(osp.join(work, 'last_checkpoint'))
        with pytest.raises(CheckpointError, match='is a directory'):
            safe_read.read_last_checkpoint(work)


# -- JSON from outside ------------------------------------------------------------------------------------
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=12)


def _record(task='cls', **metrics):
    return dict(task=task, metrics=metrics or dict(top1=70.0, top5=90.0), per_class=None,
                provenance=dict(row='d_cosine', seed=0, split='test'))


def _finite(value) -> bool:
    if isinstance(value, safe_read._NonFinite):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


KINDS = {'results': safe_read.RESULTS_RECORD, 'grid': safe_read.GRID_RESULTS, 'gaps': safe_read.LOGIT_GAPS}


def _hostile_documents():
    """Well-formed files of each kind with one value made hostile (NaN, null, text, empty, deep, ...)."""
    bad = st.one_of(st.sampled_from([float('nan'), float('inf'), float('-inf'), None, 'text', [], {}, True, 1e300,
                                     -1.0, 101.0]), JSON_VALUES)
    results = st.builds(lambda v, m: {**_record(), 'metrics': {m: v}}, bad, st.sampled_from(['top1', 'top5']))
    grid = st.one_of(st.builds(lambda v: {'cells': v}, bad),
                     st.builds(lambda v: {'cells': [{**_record(), 'metrics': {'top1': v}}]}, bad),
                     st.builds(lambda v: {'cells': [{**_record(), 'provenance': {'row': 'd_cosine', 'seed': v}}]}, bad))
    gaps = st.builds(lambda v, field: {'runs': [{**dict(label='a', label_smoothing=0.1, num_classes=10, gaps=[1.0, 2.0]),
                                                 field: v}]},
                     bad, st.sampled_from(['label_smoothing', 'num_classes', 'gaps']))
    return st.one_of(st.tuples(st.just('results'), results), st.tuples(st.just('grid'), grid),
                     st.tuples(st.just('gaps'), gaps))


def _dump(value) -> str:
    return json.dumps(value, allow_nan=True)


@given(doc=_hostile_documents())
def test_json_files_with_nan_null_text_or_no_cells_are_one_error_or_of_their_shape(doc):
    kind, value = doc
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, f'{kind}.json', _dump(value).encode())
        try:
            got = safe_read.read_json(path, KINDS[kind], f'{kind} file')
        except UserInputError as e:
            assert str(e).startswith(f'{kind} file {path}') and '\n' not in str(e)
        else:
            assert _finite(got)
            if kind != 'results':
                assert got['cells' if kind == 'grid' else 'runs']


@given(value=JSON_VALUES, kind=st.sampled_from(sorted(KINDS)))
def test_any_json_value_is_of_its_shape_or_one_error(value, kind):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, 'x.json', _dump(value).encode())
        try:
            got = safe_read.read_json(path, KINDS[kind], 'file')
        except UserInputError:
            return
        assert _finite(got)


@given(depth=st.integers(safe_read.MAX_JSON_DEPTH + 1, 100_000), junk=st.binary(min_size=1, max_size=64))
def test_deep_non_utf8_huge_and_special_json_files_are_one_error(depth, junk):
    with tempfile.TemporaryDirectory() as tmp:
        for blob in (('[' * depth + ']' * depth).encode(), b'{"cells": [' + b'\xff' + junk + b']}',
                     b'{"a": ' + b'9' * 5000 + b'}', b'{"cells": NaN}', b''):
            path = _write(tmp, 'x.json', blob)
            with pytest.raises(UserInputError, match=r'x\.json'):
                safe_read.read_json(path, safe_read.GRID_RESULTS, 'grid results file')


def test_json_files_too_large_or_special_are_one_error(tmp_path):
    path = _write(str(tmp_path), 'big.json', b' ' * (safe_read.MAX_JSON_BYTES + 1))
    with pytest.raises(UserInputError, match='more than the 64 MiB'):
        safe_read.read_json(path, safe_read.GRID_RESULTS, 'grid results file')
    os.mkfifo(tmp_path / 'fifo.json')
    with pytest.raises(UserInputError, match='not a regular file'):  # and does not block
        safe_read.read_json(str(tmp_path / 'fifo.json'), safe_read.GRID_RESULTS, 'grid results file')
    with pytest.raises(UserInputError, match='not found'):
        safe_read.read_json(str(tmp_path / 'none.json'), safe_read.GRID_RESULTS, 'grid results file')
    with pytest.raises(UserInputError, match='is a directory'):
        safe_read.read_json(str(tmp_path), safe_read.GRID_RESULTS, 'grid results file')


@given(lines=st.lists(st.one_of(JSON_VALUES.map(_dump), st.text(max_size=20)), max_size=6))
def test_scalars_json_lines_are_records_of_their_shape_or_one_error(lines):
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, 'scalars.json', '\n'.join(lines).encode('utf-8', 'surrogatepass'))
        try:
            records = safe_read.read_json_lines(path, safe_read.SCALARS_LINE, 'training log')
        except UserInputError as e:
            assert str(e).startswith(f'training log {path}')
        else:
            assert records and all(type(r['step']) is int and r['step'] >= 1 for r in records)


# -- through the tools: exit 1, one error line, no traceback ------------------------------------------------
def _one_error(code: int, err: str) -> str:
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert code == 1 and len(errors) == 1 and 'Traceback' not in err, (code, err[-3000:])
    return errors[0]


@settings(max_examples=10)
@given(doc=_hostile_documents())
def test_grid_and_gap_tools_given_hostile_files_stop_with_one_error(doc):
    kind, value = doc
    assume(kind in ('grid', 'gaps'))
    with tempfile.TemporaryDirectory() as tmp:
        path = _write(tmp, 'in.json', _dump(value).encode())
        if kind == 'grid':
            code, err = run_in_process('transfer_grid', '--from-results', path, '--out', osp.join(tmp, 'out'))
        else:
            code, err = run_in_process('plot_logit_gap', '--from-gaps', path, '--out', osp.join(tmp, 'fig.png'))
        if code == 0:  # the hostile value happened to be valid (e.g. a finite percentage)
            return
        assert path in _one_error(code, err)


@settings(max_examples=10)
@given(line=st.one_of(st.sampled_from(['{"step": NaN, "lr": 0.1, "epoch": 1}', '{"step": 1, "lr": "fast", "epoch": 1}',
                                       '{"step": 0, "lr": 0.1, "epoch": 1}', '{"step": 1, "lr": Infinity, "epoch": 1}',
                                       '{"step": null}', '[1, 2]', '{"lr": 0.1}', '\udcff']),
                      JSON_VALUES.map(_dump)))
def test_plot_schedules_given_a_hostile_log_line_stops_with_one_error(line):
    with tempfile.TemporaryDirectory() as tmp:
        folder = osp.join(tmp, 'run', '20260101_000000', 'vis_data')
        os.makedirs(folder)
        good = [dict(lr=0.1, epoch=1, iter=1, step=1), {'accuracy/top1': 50.0, 'step': 1}]
        text = '\n'.join([json.dumps(r) for r in good] + [line]) + '\n'
        _write(folder, 'scalars.json', text.encode('utf-8', 'surrogatepass'))
        code, err = run_in_process('plot_schedules', osp.join(tmp, 'run'), '--out', osp.join(tmp, 'fig.png'))
        if code == 0:
            return
        _one_error(code, err)


def _tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=child_env(), capture_output=True,
                          text=True, timeout=300)


def test_export_backbone_refuses_crafted_files_in_one_line(tmp_path, real):
    """Real processes: a pickle that would run a shell command, and a classifier checkpoint with a NaN weight."""
    sentinel = tmp_path / 'RAN'
    evil = _write(str(tmp_path), 'evil.pth', _zip(_in_checkpoint(_call('os', 'system', f'touch {sentinel}'))))
    proc = _tool('tools/export_backbone.py', evil, tmp_path / 'bb.pth')
    assert "refusing to unpickle 'os.system'" in _one_error(proc.returncode, proc.stderr)
    assert not sentinel.exists() and not (tmp_path / 'bb.pth').exists()
    ckpt = torch.load(real['path'], weights_only=False)
    ckpt['state_dict']['backbone.conv1.0.weight'][0, 0, 0, 0] = float('nan')
    nan = str(tmp_path / 'nan.pth')
    torch.save(ckpt, nan)
    proc = _tool('tools/export_backbone.py', nan, tmp_path / 'bb.pth')
    line = _one_error(proc.returncode, proc.stderr)
    assert 'conv1.0.weight holds 1 NaN' in line and nan in line
    assert not (tmp_path / 'bb.pth').exists()


def test_pretrain_resume_refuses_a_state_mmengine_would_misread(tmp_path, real):
    """Through the tool (in this process): a stored epoch of -2 (mmengine would train "epochs" -2..1) and a
    meta['config'] text (mmengine's Runner.resume would execute it) stop with one error line, before any
    file is written."""
    sentinel = tmp_path / 'RAN'
    for field, value in (('epoch', -2), ('config', f"import os\nos.system('touch {sentinel}')\n")):
        ckpt = torch.load(real['path'], weights_only=False)
        ckpt['meta'][field] = value
        path = str(tmp_path / f'{field}.pth')
        torch.save(ckpt, path)
        code, err = run_in_process('pretrain', real['cfg'], '--work-dir', tmp_path / 'w', '--resume', path)
        line = _one_error(code, err)
        assert path in line and ('meta needs epoch: an integer >= 0 (got -2)' in line or 'holds config' in line), line
    assert not sentinel.exists() and not (tmp_path / 'w' / 'epoch_1.pth').exists()
