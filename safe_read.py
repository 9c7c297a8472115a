"""The reading layer: every file that comes from outside the running process is read here, and nowhere else.

What it guarantees, for any content of the file (not only the cases a test names):

* **Checkpoints** (:func:`load_weights_file`, :func:`load_training_state`): nothing in the file is executed
  and no process state is changed. The pickle is first disassembled without running it (:func:`_scan_pickle`):
  every global it names must be one of the exact names in :data:`ALLOWED_GLOBALS` (no prefixes), it may use
  only the opcodes torch's restricted unpickler implements, and it is bounded (:data:`MAX_PICKLE_BYTES`,
  :data:`MAX_PICKLE_OPS`). Then torch's restricted unpickler (``weights_only=True``) builds it, with the
  non-torch names resolved to *checking stand-ins* (numpy arrays, scalars and dtypes are rebuilt from their
  raw bytes and dtype code; mmengine's ``HistoryBuffer`` state is checked before it is set, and never
  updates the class-wide table of statistics methods its own ``__setstate__`` would). Last, the loaded
  object is walked iteratively (:data:`MAX_DEPTH` levels, no cycles, plain data only: containers, numbers,
  text, tensors, numpy arrays and scalars, HistoryBuffers). Any failure is one :class:`CheckpointError`.
* **safetensors files** (:func:`load_safetensors_file`; :func:`load_weights_file` picks it by the
  ``.safetensors`` extension or the format's magic): no pickle at all. The header is bounded
  (:data:`MAX_SAFETENSORS_HEADER`), is UTF-8 JSON without duplicate names, names only tensors of the
  dtypes in :data:`SAFETENSORS_DTYPES` with byte ranges that match their shapes and tile the data exactly,
  and the file's size is what the header describes; only then does the ``safetensors`` package build them.
* **Weights loaded into a model** (:func:`check_weight_values`): floating point where the model's tensor
  is, and finite (no NaN/Inf); integer buffers (BatchNorm's ``num_batches_tracked``) stay integer.
* **Resume state** (:func:`check_training_state`): ``meta`` epoch/iter non-negative integers, a seed numpy
  accepts, no ``meta['config']`` (mmengine's ``Runner.resume`` would *execute* that text), the message hub
  of the shape mmengine writes.
* **Config text stored in a checkpoint** (:func:`parse_config_text`, :func:`literal_value`): parsed, never
  executed, with bounded size and nesting.
* **``last_checkpoint``** (:func:`read_last_checkpoint`): bounded UTF-8 text naming one relative path
  inside the work dir that is an existing regular file.
* **JSON from outside** (:func:`read_json`, :func:`read_json_lines`, :func:`check_shape`): bounded size
  and nesting, UTF-8, finite numbers (``NaN``/``Infinity``, which Python's json accepts, are refused where
  a value is read), validated against a declared shape (:data:`RESULTS_RECORD`, :data:`GRID_RESULTS`,
  :data:`LOGIT_GAPS`, :data:`SCALARS_LINE`), with at least one entry where the file kind is a collection.

Standard library, torch, numpy and ``user_errors`` only at import time (mmengine is imported inside
the functions that need its HistoryBuffer), so every layer above may use it.
"""
from __future__ import annotations

import ast
import errno
import functools
import json
import math
import mmap
import numbers
import os
import os.path as osp
import pickle
import re
import stat
import sys
import warnings
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Callable, Mapping

import numpy as np
import torch

from user_errors import CheckpointError, UserInputError

# -- limits ------------------------------------------------------------------------------------------------
MAX_PICKLE_BYTES = 256 * 2 ** 20   # data.pkl inside torch's zip (tensor data is outside it); a real
                                   # training checkpoint's is tens of KiB, a 1M-entry HistoryBuffer 8 MiB
MAX_PICKLE_OPS = 20_000_000        # opcodes: bounds the number of objects a small pickle can create
                                   # (a ResNet-18 training checkpoint has about 7,000)
MAX_ZIP_ENTRIES = 200_000          # torch writes one entry per storage (a ResNet-50 + Adam: ~1,000)
MAX_DEPTH = 64                     # nesting of the loaded object (mmengine's checkpoints: under 10)
MAX_CONFIG_TEXT = 4 * 2 ** 20      # meta['cfg'] (a config's pretty text: a few KiB)
MAX_CONFIG_DEPTH = 32              # nesting of a literal read from that text
MAX_LAST_CHECKPOINT_BYTES = 4096   # last_checkpoint: one file name
MAX_JSON_BYTES = 64 * 2 ** 20      # a results / grid / logit-gap file
MAX_JSON_LINES_BYTES = 256 * 2 ** 20  # mmengine's scalars.json (a line per logged iteration)
MAX_JSON_DEPTH = 64
MAX_SAFETENSORS_HEADER = 16 * 2 ** 20  # a safetensors file's JSON header (a ResNet-50's: about 30 KiB;
                                       # the safetensors package itself allows up to 100 MB)
MAX_SAFETENSORS_TENSORS = 200_000     # entries in that header (as MAX_ZIP_ENTRIES)

def _size(n: int) -> str:
    return f'{n >> 20} MiB' if n >= 2 ** 20 and n % 2 ** 20 == 0 else f'{n:,} bytes'


_UNREACHABLE = '\n'  # a GLOBAL's module and name are read up to a newline: a key containing one is unreachable


# ==========================================================================================================
# files
# ==========================================================================================================
def _open_regular(path: str, what: str, error: type[UserInputError], follow: bool = True):
    """Open ``path`` for reading without blocking on a FIFO and without following a last-component
    symlink unless ``follow``; returns (file object, stat). Errors name ``what`` and ``path``."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_CLOEXEC', 0) | (0 if follow else getattr(os, 'O_NOFOLLOW', 0))
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f'{what} not found: {path}') from None
    except IsADirectoryError:
        raise error(f'{what} {path} is a directory; expected a file') from None
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:  # with O_NOFOLLOW: the path is a symbolic link
            raise error(f'{what} {path} is a symbolic link; expected a regular file') from None
        raise error(f'{what} {path} cannot be read ({e.strerror or e})') from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise error(f'{what} {path} is a directory; expected a file')
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(f'{what} {path} is not a regular file (a FIFO, socket or device); expected a file')
    os.set_blocking(fd, True)
    return os.fdopen(fd, 'rb'), st


def check_readable_file(path: str, what: str) -> None:
    """A path torch.load may open: it exists, is a regular file (a FIFO would block), is not empty."""
    try:
        st = os.stat(path)  # follows symlinks; a loop or a dangling link fails here
    except FileNotFoundError:
        raise CheckpointError(f'{what} not found: {path}') from None
    except OSError as e:
        raise CheckpointError(f'{what} {path} cannot be read ({e.strerror or e})') from e
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f'{what} {path} is a directory; expected a checkpoint file (.pth)')
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f'{what} {path} is not a regular file (a FIFO, socket or device); expected a .pth file')
    if st.st_size == 0:
        raise CheckpointError(f'{what} {path} is empty (0 bytes); expected a torch checkpoint')
    if not os.access(path, os.R_OK):
        raise CheckpointError(f'{what} {path} is not readable (permission denied)')


# ==========================================================================================================
# checkpoints: the allow-list
# ==========================================================================================================
# Every global a checkpoint's pickle may name, exactly (module.qualname as the pickle writes it, after
# pickle's Python 2 name mapping). Nothing is admitted by prefix. Sources: torch.save of dense tensors,
# mmengine 0.10.7's Runner.save_checkpoint (checked against real cls, det and seg checkpoints, numpy 2.4).
TORCH_GLOBALS = {
    # torch's own table resolves these (torch._weights_only_unpickler): the tensor format itself
    'torch._utils._rebuild_tensor_v2': 'function: a tensor as a view of a stored storage (every tensor)',
    'torch._utils._rebuild_parameter': 'function: an nn.Parameter around such a tensor (a saved Parameter)',
    'collections.OrderedDict': 'type: state dicts; a tensor\'s (empty) backward-hook dict',
    'collections.Counter': 'type: MultiStepLR\'s milestones in a scheduler state',
    '_codecs.encode': 'function: how pickle protocol 2 stores bytes (numpy\'s raw data) as latin-1 text',
    **{f'torch.{kind}Storage': 'type: the storage of a dense tensor of that dtype'
       for kind in ('Float', 'Double', 'Half', 'BFloat16', 'Long', 'Int', 'Short', 'Char', 'Byte', 'Bool')},
}
NUMPY_GLOBALS = {
    # resolved to checking stand-ins below, never to numpy's own objects: no numpy.dtypes.* class is
    # needed, because a dtype is rebuilt from its code rather than unpickled into
    'numpy.dtype': 'type: a numeric dtype from its code (b1 i1..i8 u1..u8 f2 f4 f8); byte order checked',
    'numpy.ndarray': 'type: only as the first argument of _reconstruct',
    'numpy._core.multiarray._reconstruct': 'function: an array, rebuilt from shape, dtype and raw bytes (numpy 2)',
    'numpy.core.multiarray._reconstruct': 'function: the same, as numpy 1 names it',
    'numpy._core.multiarray.scalar': 'function: a numeric scalar (eta, best_score) from dtype and raw bytes',
    'numpy.core.multiarray.scalar': 'function: the same, as numpy 1 names it',
}
MMENGINE_GLOBALS = {
    'mmengine.logging.history_buffer.HistoryBuffer': 'type: the message hub\'s scalar logs (state checked)',
    'builtins.getattr': 'only getattr(HistoryBuffer, min|max|current|mean): how a HistoryBuffer pickles '
                        'its statistics methods (they are checked and dropped, not installed)',
}
ALLOWED_GLOBALS = frozenset(TORCH_GLOBALS) | frozenset(NUMPY_GLOBALS) | frozenset(MMENGINE_GLOBALS)

_NUMPY_CODES = frozenset({'b1', 'i1', 'u1', 'i2', 'u2', 'i4', 'u4', 'i8', 'u8', 'f2', 'f4', 'f8'})
_STATISTICS = ('min', 'max', 'current', 'mean')


def _refused(path: str, name: str) -> CheckpointError:
    return CheckpointError(f'{path}: refusing to unpickle {name!r}: checkpoints are read with the restricted '
                           'unpickler (tensors and mmengine bookkeeping only); nothing in a file is executed')


def _bad(path: str, what: str, detail: str) -> CheckpointError:
    return CheckpointError(f'{path}: not a readable torch {what} ({detail}); expected a .pth file written by '
                           'torch.save (nothing in a file is executed)')


class _Refusal(Exception):
    """Raised by a stand-in inside the unpickler; turned into a CheckpointError naming the file."""


class _NdarrayToken:
    """What the name ``numpy.ndarray`` resolves to: only _reconstruct accepts it; it cannot be created."""

    def __new__(cls, *args, **kwargs):
        raise _Refusal('numpy.ndarray called directly (arrays are rebuilt through _reconstruct only)')


class _DtypeProxy:
    """A numeric dtype by code; its pickled state may only set the byte order."""

    def __init__(self, code: str):
        self.code = code
        self.dtype = np.dtype(code)

    def __setstate__(self, state) -> None:
        if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ('<', '>', '|', '=')
                and state[2:] == (None, None, None, -1, -1, 0)):
            raise _Refusal(f'numpy dtype {self.code} with the state {str(state)[:120]} (only a byte order is '
                           'accepted for a numeric dtype)')
        if state[1] in '<>':
            self.dtype = np.dtype(self.code).newbyteorder(state[1])


class _ArrayProxy:
    """An array made by _reconstruct; its state (shape, dtype, raw bytes) builds a fresh numeric ndarray."""
    array = None

    def __setstate__(self, state) -> None:
        ok = (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[1], tuple)
              and len(state[1]) <= 32 and all(type(n) is int and n >= 0 for n in state[1])
              and isinstance(state[2], _DtypeProxy) and type(state[3]) in (bool, int) and type(state[4]) is bytes)
        if not ok:
            raise _Refusal(f'numpy array state {str(state)[:120]} (expected version, shape, numeric dtype, order, '
                           'raw bytes)')
        _, shape, dtype, fortran, raw = state
        if math.prod(shape) * dtype.dtype.itemsize != len(raw):
            raise _Refusal(f'numpy array of shape {shape} ({dtype.dtype}) with {len(raw)} bytes of data')
        self.array = np.frombuffer(raw, dtype=dtype.dtype).reshape(shape, order='F' if fortran else 'C').copy()


def _np_dtype(code, align=False, copy=True):
    if isinstance(code, bytes):
        code = code.decode('latin-1')
    if code not in _NUMPY_CODES or align not in (False, 0) or copy not in (True, 1):
        raise _Refusal(f'numpy.dtype{(code, align, copy)!r} (only numeric dtypes: {", ".join(sorted(_NUMPY_CODES))})')
    return _DtypeProxy(code)


def _np_reconstruct(subtype, shape, typecode):
    if subtype is not _NdarrayToken or shape != (0,) or typecode != b'b':
        raise _Refusal(f'numpy _reconstruct{(getattr(subtype, "__name__", subtype), shape, typecode)!r} (only as '
                       'numpy pickles a plain ndarray)')
    return _ArrayProxy()


def _np_scalar(dtype, raw=None):
    if not isinstance(dtype, _DtypeProxy) or type(raw) is not bytes or len(raw) != dtype.dtype.itemsize:
        raise _Refusal('numpy scalar that is not a numeric dtype and its raw bytes')
    return np.frombuffer(raw, dtype=dtype.dtype)[0]


@functools.lru_cache(maxsize=1)
def _history_buffer_types():
    """(mmengine's HistoryBuffer, the stand-in its pickled name resolves to). mmengine is imported here."""
    from mmengine.logging.history_buffer import HistoryBuffer

    class CheckedHistoryBuffer(HistoryBuffer):
        """Becomes a HistoryBuffer once its state is checked. HistoryBuffer.__setstate__ would update the
        class-wide ``_statistics_methods`` with whatever the file holds; here they must be the four
        built-in methods, and are dropped (the class sets those itself)."""

        def __init__(self, *args, **kwargs):
            raise _Refusal('HistoryBuffer called with arguments (mmengine pickles it by its state)')

        def __setstate__(self, state) -> None:
            if not isinstance(state, dict) or not {'max_length', '_log_history', '_count_history'} <= set(state) \
                    or not set(state) <= {'max_length', '_log_history', '_count_history', 'statistics_methods'}:
                raise _Refusal(f'HistoryBuffer state with keys {sorted(map(str, state))[:8] if isinstance(state, dict) else type(state).__name__} '
                               '(expected max_length, _log_history, _count_history, statistics_methods)')
            methods = state.get('statistics_methods', {})
            if not isinstance(methods, dict) or any(k not in _STATISTICS or v is not getattr(HistoryBuffer, k)
                                                    for k, v in methods.items()):
                raise _Refusal('HistoryBuffer statistics methods other than min, max, current, mean')
            arrays = [getattr(state[k], 'array', None) for k in ('_log_history', '_count_history')]
            if any(a is None or a.ndim != 1 or a.dtype.kind not in 'biuf' for a in arrays) or \
                    len(arrays[0]) != len(arrays[1]):
                raise _Refusal('HistoryBuffer histories that are not two numeric 1-d arrays of one length')
            if type(state['max_length']) is not int or state['max_length'] < 1:
                raise _Refusal(f'HistoryBuffer max_length {state["max_length"]!r} (expected a positive integer)')
            HistoryBuffer._set_default_statistics(self)
            self.__dict__.update(max_length=state['max_length'], _log_history=arrays[0], _count_history=arrays[1])
            self.__class__ = HistoryBuffer

    return HistoryBuffer, CheckedHistoryBuffer


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr``: only ``getattr(HistoryBuffer, 'min'|'max'|'current'|'mean')``."""
    real, checked = _history_buffer_types()
    if obj is checked and name in _STATISTICS:
        return getattr(real, name)
    raise _Refusal(f'getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) (only a HistoryBuffer '
                   'statistics method is looked up)')


def _safe_globals(names: set[str]) -> list:
    """torch's safe_globals entries for the non-torch names a pickle uses, and the stand-in types that
    BUILD may set state on (under names a GLOBAL cannot spell)."""
    out = []
    if names & set(NUMPY_GLOBALS):
        out += [(_np_dtype, 'numpy.dtype'), (_NdarrayToken, 'numpy.ndarray'),
                (_np_reconstruct, 'numpy._core.multiarray._reconstruct'),
                (_np_reconstruct, 'numpy.core.multiarray._reconstruct'),
                (_np_scalar, 'numpy._core.multiarray.scalar'), (_np_scalar, 'numpy.core.multiarray.scalar'),
                (_DtypeProxy, f'{_UNREACHABLE}dtype'), (_ArrayProxy, f'{_UNREACHABLE}array')]
    if names & set(MMENGINE_GLOBALS):
        _, checked = _history_buffer_types()
        out += [(checked, 'mmengine.logging.history_buffer.HistoryBuffer'), (_history_buffer_getattr, 'builtins.getattr')]
    return out


# ==========================================================================================================
# checkpoints: the pickle, before it is run
# ==========================================================================================================
# The opcodes torch's weights-only unpickler implements, with their argument lengths (torch/
# _weights_only_unpickler.py); any other opcode is refused (torch would refuse it too).
_FIXED_ARGS = {
    **{op[0]: 0 for op in (pickle.NEWOBJ, pickle.REDUCE, pickle.BUILD, pickle.APPEND, pickle.APPENDS, pickle.SETITEM,
                           pickle.SETITEMS, pickle.MARK, pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3,
                           pickle.NONE, pickle.NEWFALSE, pickle.NEWTRUE, pickle.EMPTY_TUPLE, pickle.EMPTY_LIST,
                           pickle.EMPTY_DICT, pickle.EMPTY_SET, pickle.BINPERSID)},
    pickle.BININT[0]: 4, pickle.BININT1[0]: 1, pickle.BININT2[0]: 2, pickle.BINFLOAT[0]: 8, pickle.BINGET[0]: 1,
    pickle.LONG_BINGET[0]: 4, pickle.BINPUT[0]: 1, pickle.LONG_BINPUT[0]: 4, pickle.PROTO[0]: 1}
_GLOBAL, _BINUNICODE, _SHORT_BINSTRING, _LONG1, _STOP = (pickle.GLOBAL[0], pickle.BINUNICODE[0], pickle.SHORT_BINSTRING[0],
                                                      pickle.LONG1[0], pickle.STOP[0])


def _global_name(module: bytes, name: bytes) -> str:
    from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING  # what torch applies (torch._utils re-exports them)
    module_s, name_s = module.decode('utf-8'), name.decode('utf-8')
    if (module_s, name_s) in NAME_MAPPING:
        module_s, name_s = NAME_MAPPING[(module_s, name_s)]
    elif module_s in IMPORT_MAPPING:
        module_s = IMPORT_MAPPING[module_s]
    return f'{module_s}.{name_s}'


class _PickleProblem(Exception):
    pass


def _scan_pickle(data, start: int, budget: list) -> tuple[int, set[str]]:
    """Disassemble one pickle at ``data[start:]`` without running it: its end offset and the globals it
    names. ``budget`` = [opcodes left]."""
    pos, end, names = start, len(data), set()
    while True:
        if pos >= end:
            raise _PickleProblem('it ends in the middle of a pickle')
        if pos - start > MAX_PICKLE_BYTES:
            raise _PickleProblem(f'its pickle is larger than {_size(MAX_PICKLE_BYTES)}')
        op = data[pos]
        pos += 1
        budget[0] -= 1
        if budget[0] < 0:
            raise _PickleProblem(f'its pickle has more than {MAX_PICKLE_OPS:,} opcodes')
        if op in _FIXED_ARGS:
            pos += _FIXED_ARGS[op]
        elif op == _GLOBAL:
            first = data.find(b'\n', pos, pos + 4096)
            second = data.find(b'\n', first + 1, first + 4097) if first >= 0 else -1
            if second < 0:
                raise _PickleProblem('a global name that does not end')
            try:
                names.add(_global_name(bytes(data[pos:first]), bytes(data[first + 1:second])))
            except UnicodeDecodeError:
                raise _PickleProblem('a global name that is not UTF-8') from None
            pos = second + 1
        elif op == _BINUNICODE:
            pos += 4 + int.from_bytes(data[pos:pos + 4], 'little')
        elif op in (_SHORT_BINSTRING, _LONG1):
            pos += 1 + (data[pos] if pos < end else 0)
        elif op == _STOP:
            return pos, names
        else:
            raise _PickleProblem(f'pickle opcode {bytes([op])!r} at byte {pos - 1}, which torch\'s restricted '
                                 'unpickler does not implement')
        if pos > end:
            raise _PickleProblem('it ends in the middle of a pickle')


def _zip_pickles(f, path: str) -> list[bytes]:
    """The data.pkl records of a torch zip checkpoint, after checking the zip directory's size."""
    end_record = getattr(zipfile, '_EndRecData', None)  # private, but in every CPython 3: the entry count
    if end_record is not None:
        rec = end_record(f)
        if rec is None:
            raise zipfile.BadZipFile('no end of central directory')
        if rec[4] > MAX_ZIP_ENTRIES:  # _ECD_ENTRIES_TOTAL
            raise _PickleProblem(f'its zip directory lists {rec[4]:,} entries, more than {MAX_ZIP_ENTRIES:,}')
        f.seek(0)
    with zipfile.ZipFile(f) as z:
        infos = [i for i in z.infolist() if i.filename == 'data.pkl' or i.filename.endswith('/data.pkl')]
        if not infos:
            raise _PickleProblem('a zip file without data.pkl')
        for info in infos:
            if info.file_size > MAX_PICKLE_BYTES:
                raise _PickleProblem(f'{info.filename} is {info.file_size:,} bytes, more than the '
                                     f'{_size(MAX_PICKLE_BYTES)} a checkpoint\'s pickle may have')
        return [z.read(i) for i in infos]


def _globals_in(f, path: str, what: str) -> set[str]:
    """Every global the file's pickles name, after the size limits; raises CheckpointError."""
    f.seek(0)
    zipped = f.read(4) == b'PK\x03\x04'  # what torch tests to choose its zip reader
    f.seek(0)
    budget = [MAX_PICKLE_OPS]
    names: set[str] = set()
    try:
        if zipped:
            for data in _zip_pickles(f, path):
                end, found = _scan_pickle(data, 0, budget)
                names |= found
        else:  # torch's legacy format: magic number, protocol, sys info, the object, storage keys, raw data
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                pos = 0
                for index in range(5):
                    if index and pos >= len(data):
                        break  # a plain pickle: torch refuses it by its missing magic number
                    pos, found = _scan_pickle(data, pos, budget)
                    names |= found
    except _PickleProblem as e:
        raise _bad(path, what, str(e)) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError) as e:
        raise CheckpointError(f'{path}: truncated or damaged checkpoint ({type(e).__name__}: '
                              f'{str(e)[:120]}); use an earlier checkpoint') from None
    except OSError as e:
        raise CheckpointError(f'{what} {path} cannot be read ({e.strerror or e})') from None
    refused = sorted(names - ALLOWED_GLOBALS)
    if refused:
        raise _refused(path, refused[0])
    return names


# ==========================================================================================================
# checkpoints: after loading
# ==========================================================================================================
_LEAVES = (type(None), bool, int, float, str, bytes)
_KEYS = (str, int, float, bool, type(None))


def _plain(obj, path: str):
    """``obj`` with the numpy stand-ins replaced by arrays, checked to be plain data: containers nested at
    most MAX_DEPTH deep without cycles; leaves numbers, text, tensors, numeric numpy, HistoryBuffers.
    Iterative (a deep object cannot exhaust the interpreter's stack)."""
    history_buffer = _history_buffer_types()[0] if 'mmengine' in sys.modules else None
    done: dict[int, Any] = {}  # id -> the object that replaces it
    keep = []  # keeps replaced objects alive while their ids are in ``done``
    path_ids: set[int] = set()
    stack: list[tuple[Any, bool]] = [(obj, False)]

    def refuse(detail: str):
        return CheckpointError(f'{path}: not plain data: {detail}; expected a checkpoint of tensors and mmengine '
                               'bookkeeping (nothing in a file is executed)')

    while stack:
        node, leaving = stack.pop()
        key = id(node)
        kind = type(node)
        if not leaving:
            if key in done:
                if key in path_ids:
                    raise refuse('a container that holds itself')
                continue
            if kind in (dict, OrderedDict, Counter, list, tuple, set, frozenset):
                if key in path_ids:
                    raise refuse('a container that holds itself')
                if len(path_ids) >= MAX_DEPTH:
                    raise refuse(f'nested deeper than {MAX_DEPTH} levels')
                path_ids.add(key)
                stack.append((node, True))
                children = node.values() if isinstance(node, dict) else node
                if isinstance(node, dict) and not all(type(k) in _KEYS for k in node):
                    bad = next(k for k in node if type(k) not in _KEYS)
                    raise refuse(f'a dict key of type {type(bad).__name__}')
                for child in children:
                    if id(child) not in done or id(child) in path_ids:
                        stack.append((child, False))
                continue
            done[key] = _leaf(node, history_buffer, refuse)
            if done[key] is not node:
                keep.append(node)
            continue
        path_ids.discard(key)
        if isinstance(node, dict):
            for k, v in node.items():
                if done[id(v)] is not v:
                    node[k] = done[id(v)]
            done[key] = node
        elif kind is list:
            for i, v in enumerate(node):
                if done[id(v)] is not v:
                    node[i] = done[id(v)]
            done[key] = node
        elif kind is tuple:
            new = tuple(done[id(v)] for v in node)
            done[key] = node if all(a is b for a, b in zip(new, node)) else new
            keep.append(node)
        else:  # set, frozenset: hashable leaves only, nothing to replace
            if any(done[id(v)] is not v for v in node):
                raise refuse('a numpy array inside a set')
            done[key] = node
    return done[id(obj)]


def _leaf(node, history_buffer, refuse):
    kind = type(node)
    if kind in _LEAVES:
        return node
    if isinstance(node, torch.Tensor):
        if node.layout != torch.strided or node.device.type == 'meta':
            raise refuse(f'a {node.layout} tensor on {node.device}')
        if node.numel() * node.element_size() > node.untyped_storage().nbytes():
            raise refuse(f'a tensor of shape {tuple(node.shape)} larger than its stored data (an expanded view)')
        if getattr(node, '_backward_hooks', None):
            raise refuse('a tensor with backward hooks')
        return node
    if kind is _ArrayProxy:
        if node.array is None:
            raise refuse('a numpy array without its data')
        return node.array
    if kind is _DtypeProxy:
        return node.dtype
    if isinstance(node, (np.bool_, np.number)):
        return node
    if history_buffer is not None and kind is history_buffer:
        return node
    if history_buffer is not None and isinstance(node, history_buffer):
        raise refuse('a HistoryBuffer without its state')
    raise refuse(f'an object of type {kind.__module__}.{kind.__qualname__}')


def _restricted_load(path: str, what: str):
    check_readable_file(path, what)
    f, _ = _open_regular(path, what, CheckpointError)
    with f:
        names = _globals_in(f, path, what)
        f.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # e.g. torch's "pickle protocol" note on a hostile file
                with torch.serialization.safe_globals(_safe_globals(names)):
                    obj = torch.load(f, map_location='cpu', weights_only=True)
        except CheckpointError:
            raise
        except (RecursionError, MemoryError) as e:
            raise _bad(path, what, f'{type(e).__name__} while unpickling: nested or sized beyond what can be '
                                   'read') from None
        except Exception as e:  # noqa: BLE001  any failure to read a file from outside is that file's
            raise _refusal(path, e, what) from None
    return _plain(obj, path)


def _refusal(path: str, e: Exception, what: str) -> CheckpointError:
    """What torch's restricted unpickler stopped at, named (its own message advises weights_only=False)."""
    cause = e
    while cause is not None and not isinstance(cause, (_Refusal, CheckpointError)):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, CheckpointError):
        return cause
    text = str(e)
    if isinstance(cause, _Refusal) or '_Refusal' in text:
        detail = str(cause) if cause is not None else text.split('_Refusal:')[-1]
        return CheckpointError(f'{path}: refusing to unpickle {detail.strip()[:300]}; nothing in a file is executed')
    m = re.search(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)', text)
    if m:
        return _refused(path, m.group(1))
    if 'Weights only load failed' in text:
        m = re.search(r'WeightsUnpickler error:\s*([^\n]+)', text)
        return _bad(path, what, f'the restricted unpickler stops at: {m.group(1).strip() if m else "not tensors"}')
    if 'central directory' in text or 'zip archive' in text or isinstance(e, EOFError):
        return CheckpointError(f'{path}: truncated or damaged checkpoint ({type(e).__name__}: '
                               f'{text.split(". ")[0].strip()[:120]}); use an earlier checkpoint')
    return _bad(path, what, f'the torch loader says {type(e).__name__}: {text.strip()[:120] or repr(e)}')


# -- safetensors: no pickle -------------------------------------------------------------------------------
SAFETENSORS_DTYPES = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1, 'U8': 1,
                      'BOOL': 1}
"""The tensor dtypes a safetensors file may hold here, with their sizes in bytes (torch's dense dtypes)."""
MAX_TENSOR_NAME = 1024
MAX_TENSOR_DIMS = 16


def _is_safetensors(path: str) -> bool:
    """The ``.safetensors`` extension, or the format's magic: an 8-byte little-endian header length, then the
    header's ``{`` (torch's zip starts ``PK``, its legacy pickle ``\\x80``)."""
    if str(path).lower().endswith('.safetensors'):
        return True
    try:
        f, _ = _open_regular(path, 'weights file', CheckpointError)
    except CheckpointError:
        return False  # the torch loader names the problem
    with f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b'{' and not head.startswith((b'PK', b'\x80'))


def _no_duplicates(pairs):
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f'the name {next(k for k, n in Counter(names).items() if n > 1)[:40]!r} appears twice')
    return dict(pairs)


def _safetensors_layout(blob: bytes, path: str, bad) -> tuple[list[str], int]:
    """The tensor names of a safetensors header, in file order, and the bytes of data it describes."""
    try:
        header = json.loads(blob.decode('utf-8'), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise bad('its header is not UTF-8 text') from None
    except json.JSONDecodeError as e:
        raise bad(f'its header is not JSON ({e.msg} at byte {e.pos})') from None
    except (ValueError, RecursionError) as e:
        raise bad(f'its header is not a table of tensors ({str(e)[:120] or type(e).__name__})') from None
    if not isinstance(header, dict):
        raise bad(f'its header is {_found(header)}, not an object of tensors')
    meta = header.pop('__metadata__', {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad('its __metadata__ is not an object of strings')
    if len(header) > MAX_SAFETENSORS_TENSORS:
        raise bad(f'it names {len(header):,} tensors, more than {MAX_SAFETENSORS_TENSORS:,}')
    spans = []
    for name, entry in header.items():
        where = f'tensor {name[:40]!r}'
        if not name or len(name) > MAX_TENSOR_NAME or not name.isprintable():
            raise bad(f'{where}: a tensor name must be 1..{MAX_TENSOR_NAME} printable characters')
        if not isinstance(entry, dict) or set(entry) != {'dtype', 'shape', 'data_offsets'}:
            raise bad(f'{where} is {_found(entry)}; expected an object with dtype, shape, data_offsets')
        dtype, shape, offsets = entry['dtype'], entry['shape'], entry['data_offsets']
        if dtype not in SAFETENSORS_DTYPES:
            raise bad(f'{where} has dtype {str(dtype)[:20]!r}; expected a tensor dtype, one of '
                      f'{", ".join(SAFETENSORS_DTYPES)}')
        if not (isinstance(shape, list) and len(shape) <= MAX_TENSOR_DIMS
                and all(type(d) is int and d >= 0 for d in shape)):
            raise bad(f'{where} has the shape {str(shape)[:60]}; expected a list of at most {MAX_TENSOR_DIMS} '
                      'non-negative integers')
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise bad(f'{where} has the data_offsets {str(offsets)[:60]}; expected [begin, end] with '
                      '0 <= begin <= end')
        nbytes = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != nbytes:
            raise bad(f'{where}: {dtype} {tuple(shape)} needs {nbytes:,} bytes, its data_offsets span '
                      f'{offsets[1] - offsets[0]:,}')
        spans.append((offsets[0], offsets[1], name))
    spans.sort()
    end = 0
    for begin, stop, name in spans:
        if begin != end:
            raise bad(f'tensor {name[:40]!r} starts at byte {begin:,} of the data, expected {end:,} '
                      '(tensors must tile the data without gaps or overlaps)')
        end = stop
    return [name for _, _, name in spans], end


def load_safetensors_file(path: str) -> dict:
    """Read a ``.safetensors`` weights file (no pickle at all): name -> tensor, in file order.

    Before any tensor is built, the 8-byte header length is at most :data:`MAX_SAFETENSORS_HEADER` and
    within the file, the header is checked (:func:`_safetensors_layout`: UTF-8 JSON, no duplicate names,
    names of 1..1024 printable characters, only the dtypes in :data:`SAFETENSORS_DTYPES`, byte ranges that
    match each shape and tile the data) and the file's size is exactly header plus data. The bytes checked
    are the bytes the ``safetensors`` package then reads. Any problem is one :class:`CheckpointError`."""
    def bad(detail: str) -> CheckpointError:
        return CheckpointError(f'{path}: not a readable safetensors file ({detail}); expected a .safetensors file '
                               'as safetensors.torch.save_file writes it')

    check_readable_file(path, 'weights file')
    f, st = _open_regular(path, 'weights file', CheckpointError)
    with f:
        size = st.st_size
        if size < 10:
            raise bad(f'{size} bytes, too short for a header length and a header')
        n = int.from_bytes(f.read(8), 'little')
        if n > MAX_SAFETENSORS_HEADER:
            raise bad(f'its header length says {n:,} bytes, more than the {MAX_SAFETENSORS_HEADER >> 20} MiB a '
                      'header may have')
        if 8 + n > size:
            raise bad(f'its header length says {n:,} bytes, the file has {size - 8:,} after it')
        names, data_bytes = _safetensors_layout(f.read(n), path, bad)
        if 8 + n + data_bytes != size:
            raise bad(f'the header describes {data_bytes:,} bytes of tensor data, the file holds {size - 8 - n:,} '
                      '(truncated, or extra bytes)')
        f.seek(0)
        blob = f.read(size + 1)
    if len(blob) != size:
        raise bad('the file changed while it was read')
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError, TypeError, RuntimeError) as e:
        raise bad(f'the safetensors reader says {" ".join(str(e).split())[:160]}') from None
    if set(tensors) != set(names):
        raise bad('the safetensors reader returned other tensors than the header names')
    return OrderedDict((name, tensors[name]) for name in names)


def load_weights_file(path: str) -> dict:
    """Read a weights file from outside: a safetensors file (by extension or magic) with
    :func:`load_safetensors_file`, anything else with the restricted unpickler, the allow-list, the limits
    above."""
    if _is_safetensors(path):
        return load_safetensors_file(path)
    obj = _restricted_load(path, 'weights file')
    if not isinstance(obj, Mapping):
        raise CheckpointError(f'{path}: expected a dict of tensors, got {type(obj).__name__}')
    return obj


def load_training_state(path: str) -> dict:
    """The project's own resume state (model, optimizer, schedulers, message hub, meta), read with the same
    loader as every other file and checked by :func:`check_training_state`."""
    obj = _restricted_load(path, 'checkpoint')
    if not isinstance(obj, Mapping) or not isinstance(obj.get('state_dict'), Mapping) \
            or not isinstance(obj.get('meta'), Mapping):
        keys = ', '.join(map(str, list(obj)[:5])) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f'{path} holds no training state (got {keys}); --resume needs a checkpoint written '
                              'by training (state_dict, meta, optimizer); to start from weights use --pretrained '
                              'or load_from')
    obj = dict(obj)
    check_training_state(obj, path)
    return obj


def check_weight_values(state: Mapping[str, Any], target: Mapping[str, Any], source: str) -> None:
    """For each key in both: where the model's tensor is floating point, the file's must be too, and finite.
    Integer buffers (BatchNorm's num_batches_tracked) are not judged. Call after the shapes are checked."""
    for key, model_value in target.items():
        value = state.get(key)
        if not isinstance(value, torch.Tensor) or not isinstance(model_value, torch.Tensor) \
                or not model_value.is_floating_point():
            continue
        if not value.is_floating_point():
            raise CheckpointError(f'{source}: {key} is {str(value.dtype).replace("torch.", "")} in the file, the model\'s '
                                  f'is {str(model_value.dtype).replace("torch.", "")}; expected floating-point weights')
        if value.numel() and not bool(torch.isfinite(value).all()):
            nan, inf = int(torch.isnan(value).sum()), int(torch.isinf(value).sum())
            raise CheckpointError(f'{source}: {key} holds {nan} NaN and {inf} infinite value(s) of {value.numel()}; '
                                  'expected finite weights (a diverged or damaged checkpoint: use an earlier one)')


# ==========================================================================================================
# config text stored in a checkpoint
# ==========================================================================================================
def parse_config_text(text: str, source: str) -> ast.Module:
    """The syntax tree of config text from a file (never executed): bounded size, nesting and recursion."""
    if len(text) > MAX_CONFIG_TEXT:
        raise CheckpointError(f'{source}: the stored config text is {len(text):,} characters, more than '
                              f'{MAX_CONFIG_TEXT:,}; pass --config')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # SyntaxWarnings (invalid escapes) are not the user's business here
            return ast.parse(text)
    except (RecursionError, MemoryError) as e:
        raise CheckpointError(f'{source}: the stored config text is nested too deeply to read ({type(e).__name__}); '
                              'pass --config') from None
    except SyntaxError as e:
        nested = 'too many nested' in str(e.msg)
        raise CheckpointError(f'{source}: the stored config text is {"nested too deeply" if nested else "not Python"} '
                              f'({e.msg}, line {e.lineno}); pass --config') from None
    except ValueError as e:  # NUL bytes (older Pythons)
        raise CheckpointError(f'{source}: the stored config text cannot be parsed ({e}); pass --config') from None


def literal_value(node: ast.AST, depth: int = 0):
    """The value of a config expression made only of literals and ``dict(...)`` calls (never executed);
    ValueError for anything else or for nesting deeper than MAX_CONFIG_DEPTH."""
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(f'line {getattr(node, "lineno", "?")}: nested deeper than {MAX_CONFIG_DEPTH} levels')
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' \
            and not node.args and all(k.arg for k in node.keywords):
        return {k.arg: literal_value(k.value, depth + 1) for k in node.keywords}
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {literal_value(k, depth + 1): literal_value(v, depth + 1) for k, v in zip(node.keys, node.values)}
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [literal_value(e, depth + 1) for e in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    raise ValueError(f'line {getattr(node, "lineno", "?")}: {type(node).__name__} is not literal data')


# ==========================================================================================================
# shapes: a small declarative description of what a value from a file must be
# ==========================================================================================================
class _NonFinite:
    """A NaN / Infinity / 1e999 in JSON text: kept as a marker so the shape check can name where it is."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


class _Mismatch(Exception):
    def __init__(self, loc: list, text: str):
        super().__init__(text)
        self.loc, self.text = loc, text


def _key(key) -> str:
    """A key as a message shows it: as it is when plain, else quoted with its control characters escaped."""
    text = str(key)
    return text[:40] if text.isprintable() and text.strip() == text and text else repr(text[:40])


def _found(value) -> str:
    if isinstance(value, _NonFinite):
        return value.text
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, numbers.Number):
        return repr(value)[:40]
    if isinstance(value, str):
        return f'the text {value[:40]!r}' + ('...' if len(value) > 40 else '')
    if isinstance(value, (list, tuple)):
        return f'a list of {len(value)} item(s)' if value else 'an empty list'
    if isinstance(value, Mapping):
        keys = ', '.join(map(_key, list(value)[:5])) + (', ...' if len(value) > 5 else '')
        return f'an object with keys {keys}' if value else 'an empty object'
    return f'a {type(value).__name__}'


class Shape:
    desc = 'a value'

    def check(self, value, loc: list):
        """``value`` (non-finite markers replaced where allowed), or _Mismatch."""
        raise NotImplementedError

    def fail(self, value, loc: list):
        raise _Mismatch(loc, f'expected {self.desc} (got {_found(value)})')


class Number(Shape):
    """A finite number (not a boolean), optionally within [lo, hi]."""

    def __init__(self, lo: float | None = None, hi: float | None = None, desc: str | None = None):
        self.lo, self.hi = lo, hi
        rng = (f' in {lo}..{hi}' if lo is not None and hi is not None else f' >= {lo}' if lo is not None
               else f' <= {hi}' if hi is not None else '')
        self.desc = desc or f'a finite number{rng}'

    def check(self, value, loc):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or isinstance(value, _NonFinite):
            self.fail(value, loc)
        if isinstance(value, int) and abs(value) > sys.float_info.max or not math.isfinite(value) \
                or (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            self.fail(value, loc)
        return value


class Integer(Number):
    def __init__(self, lo: int | None = None, hi: int | None = None, desc: str | None = None):
        super().__init__(lo, hi, desc)
        self.desc = desc or self.desc.replace('a finite number', 'an integer')

    def check(self, value, loc):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            self.fail(value, loc)
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            self.fail(value, loc)
        return value


class Text(Shape):
    desc = 'text'

    def check(self, value, loc):
        if not isinstance(value, str):
            self.fail(value, loc)
        return value


class Boolean(Shape):
    desc = 'true or false'

    def check(self, value, loc):
        if not isinstance(value, (bool, np.bool_)):
            self.fail(value, loc)
        return value


class Choice(Shape):
    def __init__(self, *values):
        self.values = values
        self.desc = 'one of ' + ', '.join(map(repr, values))

    def check(self, value, loc):
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in self.values:
            self.fail(value, loc)
        return value


class Nullable(Shape):
    def __init__(self, shape: Shape):
        self.shape = shape
        self.desc = f'{shape.desc} or null'

    def check(self, value, loc):
        return None if value is None else self.shape.check(value, loc)


class Either(Shape):
    def __init__(self, *shapes: Shape, desc: str | None = None):
        self.shapes = shapes
        self.desc = desc or ' or '.join(s.desc for s in shapes)

    def check(self, value, loc):
        for shape in self.shapes:
            try:
                return shape.check(value, loc)
            except _Mismatch:
                continue
        self.fail(value, loc)


class Instance(Shape):
    """An instance of a type named lazily (``get()`` returns it), e.g. mmengine's HistoryBuffer."""

    def __init__(self, get: Callable[[], type], desc: str):
        self.get, self.desc = get, desc

    def check(self, value, loc):
        if not isinstance(value, self.get()):
            self.fail(value, loc)
        return value


class AnyValue(Shape):
    """Anything; in JSON, numbers must be finite unless ``nonfinite_ok`` (then NaN/Infinity read as floats)."""

    def __init__(self, nonfinite_ok: bool = False, desc: str = 'any value'):
        self.nonfinite_ok, self.desc = nonfinite_ok, desc

    def check(self, value, loc):
        stack = [(value, loc)]
        while stack:  # iterative; JSON values are depth-checked before this
            node, where = stack.pop()
            if isinstance(node, _NonFinite) and not self.nonfinite_ok:
                raise _Mismatch(where, f'expected a finite number or no value (got {node.text})')
            if isinstance(node, Mapping):
                stack += [(v, where + [_key(k)]) for k, v in node.items()]
            elif isinstance(node, list):
                stack += [(v, where + [f'item {i}']) for i, v in enumerate(node)]
        return _finite_or_float(value) if self.nonfinite_ok else value


def _finite_or_float(value):
    if isinstance(value, _NonFinite):
        return float(value.text.replace('Infinity', 'inf'))
    if isinstance(value, dict):
        for k, v in value.items():
            value[k] = _finite_or_float(v)
    elif isinstance(value, list):
        value[:] = [_finite_or_float(v) for v in value]
    return value


class ListOf(Shape):
    def __init__(self, item: Shape, min_len: int = 0, item_name: str | None = None, desc: str | None = None):
        self.item, self.min_len, self.item_name = item, min_len, item_name
        self.desc = desc or (f'a list of at least {min_len} ' if min_len else 'a list of ') + item.desc.split(' (')[0]

    def check(self, value, loc):
        if not isinstance(value, (list, tuple)) or len(value) < self.min_len:
            self.fail(value, loc)
        return type(value)(self.item.check(v, self._where(loc, i)) for i, v in enumerate(value))

    def _where(self, loc: list, i: int) -> list:
        """'run 3' in place of the field holding the list when its items are named, else 'gaps[3]'."""
        if self.item_name:
            return loc[:-1] + [f'{self.item_name} {i}']
        return loc[:-1] + [f'{loc[-1]}[{i}]'] if loc else [f'item {i}']


class MapOf(Shape):
    """An object with any text keys, each value of one shape."""

    def __init__(self, value: Shape, min_len: int = 0, desc: str | None = None):
        self.value, self.min_len = value, min_len
        self.desc = desc or ('an object with at least one entry' if min_len else 'an object') + \
            f' of {value.desc.split(" (")[0]}'

    def check(self, value, loc):
        if not isinstance(value, Mapping) or len(value) < self.min_len or not all(isinstance(k, str) for k in value):
            self.fail(value, loc)
        for k in list(value):
            value[k] = self.value.check(value[k], loc + [_key(k)])
        return value


class Record(Shape):
    """An object with declared keys: ``required`` and ``optional`` shapes; other keys checked by ``extra``
    (None: not allowed); ``forbidden``: key -> why it may not be there."""

    def __init__(self, required: dict, optional: dict | None = None, extra: Shape | None = AnyValue(),
                 forbidden: dict | None = None, desc: str | None = None):
        self.required, self.optional, self.extra = required, optional or {}, extra
        self.forbidden = forbidden or {}
        self.desc = desc or 'an object with ' + ', '.join(self.required)

    def check(self, value, loc):
        if not isinstance(value, Mapping):
            self.fail(value, loc)
        for key, why in self.forbidden.items():
            if key in value:
                raise _Mismatch(loc, f'holds {key}, which is refused: {why}')
        problems = [f'{key}: {shape.desc} (got none)' for key, shape in self.required.items() if key not in value]
        for key in list(value):
            shape = self.required.get(key) or self.optional.get(key) or self.extra
            if shape is None:
                raise _Mismatch(loc, f'has the unexpected key {_key(key)}; expected {self.desc}')
            try:
                value[key] = shape.check(value[key], loc + [_key(key)])
            except _Mismatch as e:
                if e.loc != loc + [_key(key)] or not e.text.startswith('expected ') or shape is self.extra:
                    raise
                problems.append(f'{key}: {e.text[len("expected "):]}')
        if problems:  # every field of this object that is missing or of the wrong kind, in one line
            raise _Mismatch(loc, 'needs ' + '; '.join(problems))
        return value


def _message(prefix: str, e: _Mismatch) -> str:
    where = f'{prefix}, {", ".join(e.loc)}' if e.loc else prefix
    return f'{where}: {e.text}' if e.text.startswith('expected ') else f'{where} {e.text}'


def check_shape(value, shape: Shape, where: str, error: type[UserInputError] = UserInputError):
    """``value`` checked against ``shape``; ``where`` starts the one-line error (``error``)."""
    try:
        return shape.check(value, [])
    except _Mismatch as e:
        raise error(_message(where, e)) from None


# -- the file kinds read from outside ---------------------------------------------------------------------
RESULT_TASKS = ('cls', 'det', 'seg')  # engine.results.TASKS
PERCENT = Number(0, 100, desc='a percentage (a finite number in 0..100)')
RESULTS_RECORD = Record(
    {'task': Choice(*RESULT_TASKS),
     'metrics': MapOf(PERCENT, min_len=1, desc='an object of at least one metric, each a percentage (0..100)'),
     'per_class': Nullable(MapOf(MapOf(Either(Nullable(Number()), MapOf(Nullable(Number())),
                                              desc='a number, null or an object of numbers')),
                                 desc='an object of per-class tables')),
     'provenance': MapOf(AnyValue(), desc='an object')},
    desc=f'a JSON object with keys task, metrics, per_class, provenance (task one of {RESULT_TASKS}), '
         'as the ResultsHook writes')
"""The one results schema (engine/results.py): {task, metrics, per_class, provenance}."""

GRID_CELL = Record({**RESULTS_RECORD.required,
                    'provenance': Record({'row': Text(), 'seed': Integer()}, desc='an object with row and seed')},
                   desc=RESULTS_RECORD.desc)
GRID_RESULTS = Record(
    {'cells': ListOf(GRID_CELL, min_len=1, item_name='cell',
                     desc='a list of at least one results record (the one results schema, with row and seed)')},
    optional={'rows': ListOf(Text()), 'seeds': ListOf(Integer())},
    desc='a JSON object with a "cells" list of results records, as tools/transfer_grid.py writes')
"""A grid's results.json (tools/transfer_grid.py --from-results)."""

LOGIT_GAPS = Record(
    {'runs': ListOf(Record({'label': Text(), 'label_smoothing': Number(0, 1 - 1e-12, desc='a number in [0, 1)'),
                            'num_classes': Integer(2, 10 ** 9),
                            'gaps': ListOf(Number(-1e9, 1e9, desc='a finite number'), min_len=1,
                                           desc='a non-empty list of finite numbers')},
                           desc='an object with label, label_smoothing, num_classes, gaps'),
                    min_len=1, item_name='run', desc='a list of at least one run')},
    optional={'figure': Text()},
    desc='{"runs": [...]} with at least one run, as plot_logit_gap.py --gaps-out writes')
"""plot_logit_gap.py --gaps-out / --from-gaps."""

SCALARS_LINE = Record(
    {'step': Integer(1, desc='a positive integer (the iteration, or the epoch of a validation)')},
    optional={'lr': Number(), 'epoch': Integer(), 'iter': Integer(), 'accuracy/top1': Number(-1e9, 1e9)},
    extra=AnyValue(nonfinite_ok=True),  # a diverged run logs loss NaN: other keys are not read
    desc='a JSON object with a positive integer "step" (one mmengine log record per line)')
"""One line of mmengine's vis_data/scalars.json (tools/plot_schedules.py)."""


# ==========================================================================================================
# JSON files
# ==========================================================================================================
def _read_text(path: str, what: str, error, limit: int, expected: str) -> str:
    f, st = _open_regular(path, what, error)
    with f:
        if st.st_size > limit:
            raise error(f'{what} {path} is {st.st_size:,} bytes, more than the {_size(limit)} such a file may '
                        f'have; expected {expected}')
        blob = f.read(limit + 1)
    if len(blob) > limit:
        raise error(f'{what} {path} is more than {_size(limit)}; expected {expected}')
    try:
        return blob.decode('utf-8')
    except UnicodeDecodeError as e:
        line = blob.count(b'\n', 0, e.start) + 1
        raise error(f'{what} {path} is not JSON (not UTF-8 text) at line {line}; expected {expected}') from None


def _parse_float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _parse(text: str):
    """json.loads with NaN/Infinity (and 1e999) as markers; returns the value or raises ValueError."""
    return json.loads(text, parse_constant=_NonFinite, parse_float=_parse_float)


def _depth_ok(value) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return False
            stack += [(v, depth + 1) for v in (node.values() if isinstance(node, dict) else node)]
    return True


def _parse_checked(text: str, shape: Shape, prefix: str, error):
    try:
        value = _parse(text)
    except json.JSONDecodeError as e:
        raise error(f'{prefix} is not JSON ({e.msg}, line {e.lineno}); expected {shape.desc}') from None
    except RecursionError:
        raise error(f'{prefix} is nested too deeply (more than {MAX_JSON_DEPTH} levels); expected {shape.desc}') from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise error(f'{prefix} is not JSON ({str(e).split(":")[0][:100]}); expected {shape.desc}') from None
    if not _depth_ok(value):
        raise error(f'{prefix} is nested deeper than {MAX_JSON_DEPTH} levels; expected {shape.desc}')
    return check_shape(value, shape, prefix, error)


def read_json(path: str, shape: Shape, what: str, error: type[UserInputError] = UserInputError,
              max_bytes: int = MAX_JSON_BYTES):
    """A JSON file from outside, checked against ``shape``. Every problem (missing, not a regular file, too
    large, not UTF-8, not JSON, NaN/Infinity, too deep, not of the shape) is one ``error`` naming ``what``
    and ``path`` and what was expected."""
    text = _read_text(path, what, error, max_bytes, shape.desc)
    return _parse_checked(text, shape, f'{what} {path}', error)


def read_json_lines(path: str, shape: Shape, what: str, error: type[UserInputError] = UserInputError,
                    min_records: int = 1, max_bytes: int = MAX_JSON_LINES_BYTES) -> list:
    """A JSON-lines file (one value per line, blank lines skipped), each line checked against ``shape``."""
    text = _read_text(path, what, error, max_bytes, shape.desc)
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            records.append(_parse_checked(line, shape, f'{what} {path}, line {n}', error))
    if len(records) < min_records:
        raise error(f'{what} {path} holds no records; expected lines of {shape.desc}')
    return records


# ==========================================================================================================
# resume state
# ==========================================================================================================
_SEED = Nullable(Integer(0, 2 ** 32 - 1, desc='an integer in 0..2**32-1 (numpy\'s seed range)'))
_COUNT = Integer(0, desc='an integer >= 0')
TRAINING_META = Record(
    {'epoch': _COUNT, 'iter': _COUNT},
    optional={'seed': _SEED, 'cfg': Text(), 'experiment_name': Text(),
              'teacher': Nullable(Record({'checkpoint': Text(), 'sha256': Text(), 'config': Text()},
                                         desc='an object with checkpoint, sha256, config'))},
    forbidden={'config': "mmengine's Runner.resume would execute that text as a config file"},
    desc='the meta mmengine writes (epoch, iter, cfg, seed, ...)')
MESSAGE_HUB = Record(
    {'log_scalars': MapOf(Instance(lambda: _history_buffer_types()[0], 'a HistoryBuffer')),
     'runtime_info': Record({}, optional={
         'epoch': _COUNT, 'iter': _COUNT, 'max_epochs': _COUNT, 'max_iters': _COUNT, 'seed': _SEED,
         'keep_ckpt_ids': ListOf(_COUNT), 'best_score': Number(), 'best_ckpt': Text(), 'last_ckpt': Text(),
         'cfg': Text(), 'experiment_name': Text(), 'loop_stage': Text()}, desc='an object'),
     'resumed_keys': MapOf(Boolean())},
    desc='an object with log_scalars, runtime_info, resumed_keys (as mmengine\'s MessageHub.state_dict)')


def check_training_state(checkpoint: Mapping, path: str) -> None:
    """What ``--resume`` hands to mmengine's Runner.resume, checked: meta (epoch and iter non-negative
    integers, a seed numpy accepts, no ``config`` text mmengine would execute) and the message hub (the
    shape mmengine writes: log_scalars of HistoryBuffers, runtime_info, resumed_keys)."""
    where = f'{path}: --resume needs a training checkpoint as mmengine writes it: meta'
    check_shape(checkpoint.get('meta'), TRAINING_META, where, CheckpointError)
    if 'message_hub' not in checkpoint:
        raise CheckpointError(f'{path}: --resume needs a training checkpoint as mmengine writes it: it has no '
                              'message_hub')
    check_shape(checkpoint['message_hub'], MESSAGE_HUB,
                f'{path}: --resume needs a training checkpoint as mmengine writes it: message_hub', CheckpointError)


# ==========================================================================================================
# last_checkpoint
# ==========================================================================================================
_STEP_FILE = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def _newest_hint(work_dir: str) -> str:
    try:
        steps = sorted((int(m.group(2)), f) for f in os.listdir(work_dir) if (m := _STEP_FILE.match(f)))
    except OSError:
        steps = []
    if steps:
        newest = osp.join(work_dir, steps[-1][1])
        return f'the newest checkpoint there is {newest}: pass --resume {newest} (or another checkpoint file)'
    return 'pass --resume FILE with the checkpoint to continue from'


def read_last_checkpoint(work_dir: str) -> str | None:
    """The checkpoint ``<work_dir>/last_checkpoint`` names, as ``<work_dir>/<name>``; None when there is no
    such file. It must be a regular file of at most 4 KiB of UTF-8 text holding one relative path that
    stays inside the work dir (no absolute path, no ``..``, no NUL, no link out of it) and names an
    existing regular file; anything else is one CheckpointError saying what was found and what was expected.
    There is no guessing: a named file that is gone is an error that names the newest epoch_N/iter_N file."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.lexists(path):
        return None
    expected = 'expected one line naming a checkpoint file inside the work dir (e.g. epoch_3.pth), as training writes it'
    f, st = _open_regular(path, 'last_checkpoint file', CheckpointError, follow=False)
    with f:
        blob = f.read(MAX_LAST_CHECKPOINT_BYTES + 1)
    problem = None
    if len(blob) > MAX_LAST_CHECKPOINT_BYTES:
        problem = f'is larger than {MAX_LAST_CHECKPOINT_BYTES:,} bytes'
    else:
        try:
            name = blob.decode('utf-8').strip()
        except UnicodeDecodeError:
            name, problem = '', f'holds {len(blob)} bytes that are not UTF-8 text'
    if problem is None:
        shown = repr(name[:200]) + ('...' if len(name) > 200 else '')
        if not name:
            problem = 'is empty'
        elif '\x00' in name:
            problem = f'holds a NUL character ({shown})'
        elif '\n' in name or '\r' in name:
            problem = f'holds more than one line ({shown})'
        elif osp.isabs(name):
            problem = f'names the absolute path {shown}'
        elif '..' in name.split('/'):
            problem = f'names {shown}, which leads out of the work dir'
    if problem:
        raise CheckpointError(f'{path} {problem}; {expected}; {_newest_hint(work_dir)}')
    chosen = osp.join(work_dir, name)
    real, root = osp.realpath(chosen), osp.realpath(work_dir)
    if osp.commonpath([real, root]) != root:
        raise CheckpointError(f'{path} names {shown}, a link to {real} outside the work dir; {expected}; '
                              f'{_newest_hint(work_dir)}')
    try:
        target = os.stat(chosen)
    except OSError as e:
        gone = 'which does not exist' if isinstance(e, FileNotFoundError) else f'which cannot be read ({e.strerror})'
        raise CheckpointError(f'{path} names {shown}, {gone}; {_newest_hint(work_dir)}') from None
    if not stat.S_ISREG(target.st_mode):
        raise CheckpointError(f'{path} names {shown}, which is not a regular file; {expected}; '
                              f'{_newest_hint(work_dir)}')
    return chosen
