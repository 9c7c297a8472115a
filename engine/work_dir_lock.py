"""The work-dir lock: ``work_dir/train.lock`` (pid, host, process start time) held by the training that writes
there; a second training into a live work dir stops with an error naming the first, and the lock of a killed
run (no such process on this host) is taken over. Created and removed through the writing layer."""
from __future__ import annotations

import json
import os
import os.path as osp
import socket
import time

import safe_write
from user_errors import PreflightError

LOCK_NAME = 'train.lock'


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid from the process that wrote a lock)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(info: dict) -> bool:
    if info.get('host') != socket.gethostname():
        return True  # cannot look at another machine's processes: assume it runs
    pid = info.get('pid')
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    start = info.get('start')
    return start is None or _process_start(pid) in (None, start)


class WorkDirLock:
    """``work_dir/train.lock``: JSON with pid, host and start time of the training that holds the dir."""

    def __init__(self, work_dir: str, logger=None):
        self.path = osp.join(work_dir, LOCK_NAME)
        self.work_dir, self.logger = work_dir, logger
        self.info = dict(pid=os.getpid(), host=socket.gethostname(), start=_process_start(os.getpid()),
                         since=time.strftime('%Y-%m-%d %H:%M:%S'))
        self.held = False

    def _read(self) -> dict | None:
        try:
            with open(self.path) as f:
                info = json.load(f)
            return info if isinstance(info, dict) else None
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        for _ in range(10):
            if safe_write.create_new(self.path, json.dumps(self.info), 'lock file'):
                self.held = True
                return
            other = self._read()
            if other is not None and _alive(other):
                raise PreflightError(
                    f'work dir {self.work_dir} is in use by a running training (pid {other.get("pid")} on host '
                    f'{other.get("host")}, since {other.get("since")}); wait for it to finish or pass another '
                    f'--work-dir (remove {self.path} only if that run is gone)')
            if not safe_write.remove(self.path) and osp.lexists(self.path):
                raise PreflightError(f'{self.path} is not a lock this project wrote (or it was changed); remove it '
                                     'yourself if no training is running in this work dir')
            if self.logger:
                what = (f'pid {other.get("pid")} on host {other.get("host")}, since {other.get("since")}'
                        if other else 'unreadable')
                self.logger.warning(f'took over the stale lock {self.path} ({what}): that run is gone '
                                    '(killed or crashed)')
        raise PreflightError(f'could not take the lock {self.path}: other processes keep replacing it')

    def release(self) -> None:
        if self.held and (self._read() or {}).get('pid') == os.getpid():
            safe_write.remove(self.path)
        self.held = False
