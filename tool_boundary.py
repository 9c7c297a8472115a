"""The error boundary of every command-line tool: a user's mistake ends the run with one ``error: ...``
line on stderr and exit status 1, not a traceback.

* ``run_tool(main)``: every tool's ``if __name__ == '__main__'`` calls its ``main`` through it.
* ``ToolArgumentParser``: every tool's parser; a usage error (unknown flag, missing or malformed
  argument, bad choice, a value a ``type=`` below refuses) is a ``ConfigError`` like every other mistake,
  where argparse would print its usage and exit with status 2. ``--help`` still prints and exits 0.
* ``int_range`` / ``float_range`` and the named ranges built from them (``positive_int``,
  ``non_negative_int``, ``numpy_seed``, ``world_size``, ``finite_float``): argparse ``type=`` functions, so an
  out-of-range number is refused by the parser with one line naming the flag and the expected range.

What counts as the user's mistake: the classes of ``user_errors`` (config, command line, weights, data,
preflight), the OS errors of a wrong path, a full disk, a config key a component's constructor does not
take (``--cfg-options`` lets new keys into components). Anything else is a bug and keeps its traceback.
``BAGTRICKS_TRACEBACK=1`` shows the traceback for user errors too.

Standard library only (and ``user_errors``), low in the import graph beside ``user_errors``: a tool
answers a bad argument without importing torch or the engine, and tools that never import the engine
(model_table, plot_lr, the benchmarks) share the same boundary.
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import sys

from user_errors import USER_ERRORS, ConfigError

# the machine's fault rather than the user's, but equally one line: nothing a traceback would help with
_FULL_DISK = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
# torch re-raises a data-loader worker's exception in the main process as the same type, with this
# header and the worker's whole traceback as its message (torch._utils.ExceptionWrapper.reraise)
_WORKER_TRACEBACK = 'Original Traceback (most recent call last):'
_TRACEBACK = 'Traceback (most recent call last):'


class ToolArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors raise ``ConfigError`` (one ``error:`` line under ``run_tool``)
    instead of printing the usage and exiting with status 2."""

    def error(self, message: str):
        usage = ' '.join(self.format_usage().split())
        raise ConfigError(f'{message} (usage: {usage.removeprefix("usage: ")})')


def _shown(text: str, limit: int = 40) -> str:
    """An argument as the error shows it: quoted, cut short (a 5,000-digit number stays one short line)."""
    return repr(text if len(text) <= limit else text[:limit] + '...')


def _expected(kind: str, lo, hi) -> str:
    if lo is not None and hi is not None:
        return f'{kind} from {lo} to {hi}'
    if lo is not None:
        return f'{kind} >= {lo}'
    if hi is not None:
        return f'{kind} <= {hi}'
    return kind


def int_range(lo: int | None = None, hi: int | None = None):
    """argparse ``type=``: an integer in ``[lo, hi]`` (``None``: that end open)."""
    expected = _expected('an integer', lo, hi)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):  # also a number too long for int() (sys.get_int_max_str_digits)
            raise argparse.ArgumentTypeError(f'{_shown(text)}: expected {expected}') from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f'{_shown(text)}: expected {expected}')
        return value

    parse.__name__ = 'integer'
    return parse


def float_range(lo: float | None = None, hi: float | None = None):
    """argparse ``type=``: a finite number in ``[lo, hi]`` (``None``: that end open); NaN and inf are refused."""
    expected = _expected('a finite number', lo, hi)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f'{_shown(text)}: expected {expected}') from None
        if not math.isfinite(value) or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f'{_shown(text)}: expected {expected}')
        return value

    parse.__name__ = 'number'
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
numpy_seed = int_range(0, 2 ** 32 - 1)  # numpy.random.seed's range (mmengine seeds numpy with it)
world_size = int_range(1, 65536)  # processes of a (possibly multi-machine) run
finite_float = float_range()


def worker_message(exc: BaseException) -> str:
    """The message of ``exc``; for an exception torch re-raised from a data-loader worker, the worker's
    own message without the "Caught ... in DataLoader worker process N" header and traceback text."""
    text = str(exc)
    if _WORKER_TRACEBACK not in text:
        return text
    last = text.rsplit(_TRACEBACK, 1)[1].split('\n')  # the last (outermost) exception of a chain
    start = next((i for i, line in enumerate(last) if line and not line[0].isspace()), None)
    if start is None:
        return text
    line = '\n'.join(last[start:]).strip()
    cls = type(exc)  # torch re-raises the worker's own type; traceback prints it module-qualified
    for name in (f'{cls.__module__}.{cls.__qualname__}', cls.__qualname__):
        if line == name:
            return ''
        if line.startswith(name + ': '):
            return line[len(name) + 2:]
    return line


def one_line(exc: BaseException) -> str:
    return ' '.join(worker_message(exc).split()) or type(exc).__name__


def is_user_error(e: BaseException) -> bool:
    # a config key a component does not take surfaces as TypeError from its constructor
    return (isinstance(e, USER_ERRORS) or (isinstance(e, TypeError) and 'unexpected keyword argument' in str(e))
            or (isinstance(e, OSError) and e.errno in _FULL_DISK))


def run_tool(main, argv=None):
    """Call ``main(argv)``; a user error prints ``error: <message>`` on stderr and exits with status 1.

    Command-line mistakes are user errors too when the tool's parser is a ``ToolArgumentParser``.
    """
    try:
        return main(argv)
    except Exception as e:
        if not is_user_error(e) or os.environ.get('BAGTRICKS_TRACEBACK') == '1':
            raise
        hint = ' (a config or --cfg-options key that this component does not take)' if isinstance(e, TypeError) else ''
        sys.stdout.flush()
        print(f'error: {one_line(e)}{hint}', file=sys.stderr, flush=True)
        raise SystemExit(1) from None
