"""The writing layer: every file and folder the project writes goes through this module.

Before anything is written, an output path is refused (:class:`OutputError`, one ``error:`` line) when it
* exists and this layer did not write it. Each folder the layer writes into holds a manifest,
  ``.bagtricks-written``, naming every file written there with its size and sha256; an existing file is
  replaced or removed only if it is named there *with the same content* (a file a user edited since is
  theirs). Folders written as a whole (a prepared dataset) are named in their parent's manifest; logs,
  which grow, are named without a hash. The manifest is the only ownership record: nothing is guessed
  from a file's name or content;
* is not a regular file or folder (a device node, FIFO or socket), or is a symlink (the layer never writes
  through a link into its target, nor replaces the link);
* is an input, or (for folders given as inputs: a data root) is, contains or sits inside one. Work dirs
  have one more rule (:func:`check_work_dir`): not the config's own folder (unless that config is a
  copy a run wrote there).

Writes are atomic: the content goes to ``.bagtricks-tmp-<pid>-<random>.<name>`` in the same folder, is
checked complete, then renamed over the target; on any failure the temporary file is removed and the
target is untouched. A run killed mid-write leaves only such a temporary file, which the next write into
that folder removes (its pid is gone). Standard library only, low in the import graph (beside
``user_errors``): serialisers (``torch.save``, matplotlib, PIL) are passed in as a function of the
temporary path (:func:`write_with`).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import os.path as osp
import re
import secrets
import shutil
import stat
from typing import Callable, Iterable

from user_errors import UserInputError

MANIFEST = '.bagtricks-written'
TMP_PREFIX = '.bagtricks-tmp-'
_TMP_NAME = re.compile(rf'^{re.escape(TMP_PREFIX)}(\d+)-[0-9a-f]+\.')


class OutputError(UserInputError):
    """An output path that would replace or write into something the project did not write, or an input."""


# -- what a path is ---------------------------------------------------------------------------------------------
def _kind(path: str) -> str | None:
    """'file', 'dir', 'link', 'special' or None (absent). Never follows the last component."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise OutputError(f'{path}: a folder on this path is a file ({_first_file_parent(path)}); choose a path '
                          'whose parents are folders') from None
    if stat.S_ISLNK(mode):
        return 'link'
    if stat.S_ISREG(mode):
        return 'file'
    if stat.S_ISDIR(mode):
        return 'dir'
    return 'special'


def _first_file_parent(path: str) -> str:
    probe = osp.dirname(osp.abspath(path))
    while probe != osp.dirname(probe) and not osp.isfile(probe):
        probe = osp.dirname(probe)
    return probe


def _refuse_link_or_special(path: str, what: str, kind: str | None) -> None:
    if kind == 'link':
        raise OutputError(f'{what} {path} is a symlink (to {os.readlink(path)}); outputs are never written through '
                          'a link: name the real path, or remove the link')
    if kind == 'special':
        raise OutputError(f'{what} {path} is not a regular file or folder (a device, FIFO or socket); '
                          'choose a file path')


def _real(path: str) -> str:
    return osp.realpath(osp.abspath(path))


def _inside(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (both resolved)."""
    path, folder = _real(path), _real(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_not_input(path: str, what: str, input_files: Iterable[str] = (), input_dirs: Iterable[str] = ()) -> None:
    """``path`` (an output file or folder) is none of ``input_files`` and is not, does not contain and does not
    sit inside any of ``input_dirs`` (data roots)."""
    for src in input_files:
        if src and osp.exists(src) and _real(src) == _real(path):
            raise OutputError(f'{what} {path} is the input {src}; writing it would replace the input: '
                              'choose another path')
    for src in input_dirs:
        if not src:
            continue
        if _inside(path, src):
            raise OutputError(f'{what} {path} is inside the input folder {src}; outputs never go into an input '
                              '(it would add files to the data): choose a path outside it')
        if _inside(src, path):
            raise OutputError(f'{what} {path} contains the input folder {src}; choose a path that does not hold '
                              'the data')


def _nearest_existing(folder: str) -> str:
    probe = osp.abspath(folder)
    while not osp.lexists(probe):
        probe = osp.dirname(probe)
    return probe


def _check_folder_can_exist(folder: str, what: str) -> None:
    probe = _nearest_existing(folder)
    if not osp.isdir(probe):
        raise OutputError(f'{what} {folder}: {probe} is a file, not a folder')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f'{what} {folder}: {probe} is not writable (permission denied); choose another path')


# -- the manifest -----------------------------------------------------------------------------------------------
def _manifest_path(folder: str) -> str:
    return osp.join(folder, MANIFEST)


def _read_manifest(folder: str) -> dict:
    path = _manifest_path(folder)
    kind = _kind(path)
    if kind is None:
        return {}
    _refuse_link_or_special(path, 'manifest', kind)
    if kind != 'file':
        raise OutputError(f'{path} is not a file; it is the record of what bagtricks wrote in {folder}')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        files = data['files']
        if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise ValueError('files is not a table')
        return files
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise OutputError(f'{path} (the record of what bagtricks wrote in {folder}) is damaged '
                          f'({type(e).__name__}); nothing in that folder is replaced until it is removed') from None


@contextlib.contextmanager
def _locked(folder: str):
    """The folder's manifest is read and updated by one process at a time (flock on the folder)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_manifest(folder: str, files: dict) -> None:
    text = json.dumps(dict(files=files, about='files bagtricks wrote here, with their size and sha256; '
                                              'an entry lets bagtricks replace that file'), indent=1, sort_keys=True)
    tmp = _tmp_name(folder, MANIFEST)
    try:
        with open(tmp, 'x', encoding='utf-8') as f:
            f.write(text + '\n')
        os.replace(tmp, _manifest_path(folder))
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _entry(path: str, kind: str) -> dict:
    if kind == 'file':
        return dict(kind='file', size=os.path.getsize(path), sha256=_sha256(path))
    return dict(kind=kind)


def _owned(path: str, files: dict) -> bool:
    entry = files.get(osp.basename(path))
    if entry is None:
        return False
    kind = _kind(path)
    if entry.get('kind') == 'file':
        return kind == 'file' and entry.get('size') == os.path.getsize(path) and entry.get('sha256') == _sha256(path)
    return kind == ('dir' if entry.get('kind') == 'dir' else 'file')  # a tree or a log


def is_ours(path: str) -> bool:
    """True when ``path`` exists and its folder's manifest says this layer wrote it (same content)."""
    folder = osp.dirname(osp.abspath(path))
    return osp.isdir(folder) and _owned(path, _read_manifest(folder))


def check_output(path: str, what: str = 'output', input_files: Iterable[str] = (),
                 input_dirs: Iterable[str] = (), folder: bool = False) -> str:
    """Everything that can be known before the work: ``path`` may be written (absent, or written by this layer
    and unchanged), is no link, device or input, and its folder can be created. Returns ``path``."""
    kind = _kind(path)
    _refuse_link_or_special(path, what, kind)
    if kind == 'dir' and not folder:
        raise OutputError(f'{what} {path} is a folder; expected a file path (e.g. {osp.join(path, "out")})')
    if kind == 'file' and folder:
        raise OutputError(f'{what} {path} is a file; expected a folder')
    check_not_input(path, what, input_files, input_dirs)
    parent = osp.dirname(osp.abspath(path.rstrip(os.sep) or path))
    empty_dir = kind == 'dir' and not os.listdir(path)  # nothing in it to lose
    if kind is not None and not empty_dir and not _owned(path, _read_manifest(parent)):
        raise OutputError(f'{what} {path} exists and was not written by bagtricks (or was changed since); it is '
                          'kept: choose another path, or move it away yourself')
    _check_folder_can_exist(parent, what)
    return path


# -- temporary files --------------------------------------------------------------------------------------------
def _tmp_name(folder: str, name: str) -> str:
    # the target's name last, so its extension is kept (serialisers choose the format by it) and the stem
    # is never empty (torch's zip writer refuses a dot-file without one)
    return osp.join(folder, f'{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.{name}')


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: str) -> list[str]:
    """Remove the temporary files and folders a killed run of this project left in ``folder`` (their pid is
    gone). Returns their names."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in sorted(names):
        m = _TMP_NAME.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        path = osp.join(folder, name)
        if _kind(path) == 'dir':
            shutil.rmtree(path, ignore_errors=True)
        elif _kind(path) in ('file', 'link'):
            os.remove(path)
        removed.append(name)
    return removed


def make_dirs(folder: str, what: str = 'output folder', input_dirs: Iterable[str] = ()) -> str:
    """Create ``folder`` (and parents) for outputs; an existing folder is used as it is (new files may go into
    any folder; only replacing needs ownership). Refuses links, files and input folders."""
    kind = _kind(folder)
    _refuse_link_or_special(folder, what, kind)
    if kind == 'file':
        raise OutputError(f'{what} {folder} is a file; expected a folder')
    check_not_input(folder, what, (), input_dirs)
    _check_folder_can_exist(folder, what)
    os.makedirs(folder, exist_ok=True)
    return folder


# -- writing ----------------------------------------------------------------------------------------------------
def write_with(path: str, write: Callable[[str], object], what: str = 'output', input_files: Iterable[str] = (),
               input_dirs: Iterable[str] = ()) -> str:
    """Write ``path`` atomically: ``write(tmp)`` creates the content at a temporary path in the same folder
    (``torch.save(obj, tmp)``, ``fig.savefig(tmp)``, ...); it is then renamed over ``path`` and recorded in
    the folder's manifest. On any failure nothing but the temporary file was written, and it is removed."""
    check_output(path, what, input_files, input_dirs)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(folder)
    tmp = _tmp_name(folder, osp.basename(path))
    try:
        write(tmp)
        if _kind(tmp) != 'file':
            raise OutputError(f'{what} {path}: the writer produced no file')
        os.chmod(tmp, 0o666 & ~_umask())
        entry = _entry(tmp, 'file')
        with _locked(folder):
            files = _read_manifest(folder)
            if _kind(path) is not None and not _owned(path, files):  # appeared or changed while we wrote
                raise OutputError(f'{what} {path} was written by something else meanwhile; it is kept')
            os.replace(tmp, path)
            files[osp.basename(path)] = entry
            _write_manifest(folder, files)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str, data: bytes, **kw) -> str:
    def write(tmp):
        with open(tmp, 'xb') as f:
            f.write(data)
    return write_with(path, write, **kw)


def write_text(path: str, text: str, **kw) -> str:
    return write_bytes(path, text.encode('utf-8'), **kw)


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, 'item') and callable(value.item):  # numpy / torch scalars
        return value.item()
    return value


def write_json(path: str, obj, **kw) -> str:
    """JSON with sorted keys, 2-space indent; numpy/torch scalars become numbers. NaN/Inf are refused (they are
    not JSON and no reader of ours accepts them)."""
    try:
        text = json.dumps(_plain(obj), indent=2, sort_keys=True, allow_nan=False)
    except ValueError as e:
        raise ValueError(f'{path}: refusing to write a non-finite number as JSON ({e})') from e
    return write_text(path, text + '\n', **kw)


def write_figure(path: str, fig, dpi: int = 100, what: str = 'figure') -> str:
    """A matplotlib figure as PNG, without the library's version in the metadata (the same data gives the same
    bytes, so a committed figure can be checked against a redraw)."""
    return write_with(path, lambda tmp: fig.savefig(tmp, format='png', dpi=dpi, metadata={'Software': None}),
                      what=what)


def write_tree(path: str, build: Callable[[str], object], what: str = 'output folder',
               input_dirs: Iterable[str] = ()) -> str:
    """Write a whole folder atomically: ``build(tmp)`` fills a new temporary folder beside ``path``, which then
    replaces ``path`` (absent, or a folder this layer wrote as a whole). A failure leaves nothing behind."""
    check_output(path, what, (), input_dirs, folder=True)
    parent = osp.dirname(osp.abspath(path.rstrip(os.sep)))
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent)
    tmp = _tmp_name(parent, osp.basename(path.rstrip(os.sep)))
    old = None
    try:
        os.mkdir(tmp)
        build(tmp)
        with _locked(parent):
            files = _read_manifest(parent)
            if _kind(path) == 'dir' and not os.listdir(path) and not _owned(path, files):
                os.rmdir(path)  # an empty folder: nothing to lose
            if _kind(path) is not None:
                if not _owned(path, files):
                    raise OutputError(f'{what} {path} was created by something else meanwhile; it is kept')
                old = _tmp_name(parent, osp.basename(path) + '.old')
                os.rename(path, old)  # our own earlier tree: moved aside, removed once the new one is in place
            os.rename(tmp, path)
            files[osp.basename(path)] = dict(kind='dir')
            _write_manifest(parent, files)
    finally:
        for leftover in (tmp, old):
            if leftover and osp.lexists(leftover):
                shutil.rmtree(leftover, ignore_errors=True)
    return path


def open_log(path: str, what: str = 'log file'):
    """Open a log for appending (a log grows, so it is not written atomically): absent, or a log this layer
    opened before. Returns the open text file."""
    check_output(path, what)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with _locked(folder):
        files = _read_manifest(folder)
        f = open(path, 'a', encoding='utf-8')
        if files.get(osp.basename(path), {}).get('kind') != 'log':
            files[osp.basename(path)] = dict(kind='log')
            _write_manifest(folder, files)
    return f


def replace_marked_section(text: str, begin: str, end: str, section: str, where: str = 'the file') -> str:
    """``text`` with what lies between the ``begin`` and ``end`` markers replaced by ``section`` (each marker
    exactly once, in that order)."""
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise OutputError(f'{where}: expected one {begin} line followed by one {end} line; it is kept')
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + '\n' + section.strip() + '\n' + text[stop:]


def write_marked_section(path: str, begin: str, end: str, section: str, what: str = 'file') -> str:
    """Replace the text between the ``begin`` and ``end`` marker lines of a file the user owns (README's
    generated section): the markers are the project's claim, everything outside them is kept byte for byte.
    Rewritten atomically."""
    kind = _kind(path)
    _refuse_link_or_special(path, what, kind)
    if kind != 'file':
        raise OutputError(f'{what} {path} does not exist; expected a file holding the lines {begin} and {end}')
    with open(path, encoding='utf-8') as f:
        new = replace_marked_section(f.read(), begin, end, section, f'{what} {path}')
    folder = osp.dirname(osp.abspath(path))
    tmp = _tmp_name(folder, osp.basename(path))
    try:
        with open(tmp, 'x', encoding='utf-8') as f:
            f.write(new)
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
    return path


def create_new(path: str, text: str, what: str = 'file') -> bool:
    """Create ``path`` with ``text`` only if nothing is there (atomic, complete when it appears: a lock file).
    Returns False when something already exists at ``path``."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(folder)
    tmp = _tmp_name(folder, osp.basename(path))
    try:
        with open(tmp, 'x', encoding='utf-8') as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        entry = _entry(tmp, 'file')
        with _locked(folder):
            try:
                os.link(tmp, path)  # fails if anything exists there, link and FIFO included
            except FileExistsError:
                return False
            files = _read_manifest(folder)
            files[osp.basename(path)] = entry
            _write_manifest(folder, files)
        return True
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)


def remove(path: str) -> bool:
    """Remove ``path`` if this layer wrote it and it is unchanged; anything else is left where it is. Returns
    whether it was removed."""
    folder = osp.dirname(osp.abspath(path))
    if not osp.isdir(folder):
        return False
    with _locked(folder):
        files = _read_manifest(folder)
        if not _owned(path, files):
            return False
        if _kind(path) == 'dir':
            shutil.rmtree(path)
        else:
            os.remove(path)
        files.pop(osp.basename(path), None)
        _write_manifest(folder, files)
    return True


def check_work_dir(work_dir: str, config: str | None = None, input_files: Iterable[str] = (),
                   input_dirs: Iterable[str] = ()) -> str:
    """A training or test run's work dir, before any work: a folder (or absent) that is no link, not the
    config's own folder (the config dump would land beside, or over, the user's configs), and not, inside or
    around a data root; no input file sits where an output of the run goes."""
    what = '--work-dir'
    kind = _kind(work_dir)
    _refuse_link_or_special(work_dir, what, kind)
    if kind == 'file':
        raise OutputError(f'{what} {work_dir} is a file; expected a folder')
    if config and _real(osp.dirname(osp.abspath(config))) == _real(work_dir) and not is_ours(config):
        # (a config copy a run wrote into its own work dir may be run again there: OpenMMLab's test habit)
        raise OutputError(f'{what} {work_dir} is the folder of the config {config}; the run writes its config copy, '
                          'logs and checkpoints there: choose another work dir (default: work_dirs/<config name>)')
    check_not_input(work_dir, what, (), input_dirs)
    for src in input_files:
        if src and osp.exists(src) and _real(src) == _real(work_dir):
            raise OutputError(f'{what} {work_dir} is the input {src}')
    _check_folder_can_exist(work_dir, what)
    return work_dir
