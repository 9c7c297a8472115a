"""The tools' entry guard: a user's mistake ends the run with one ``error: ...`` line, not a traceback.

What counts as the user's mistake: config and command-line errors, weights files that do not fit,
missing files, data that fails the dataset checks or the preflight, a config key that a component's
constructor does not take (``--cfg-options`` lets new keys into components). Anything else is a bug and keeps
its traceback. ``BAGTRICKS_TRACEBACK=1`` shows the traceback for user errors too.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from unittest import mock

from user_errors import USER_ERRORS, ConfigError

# the machine's fault rather than the user's, but equally one line: nothing a traceback would help with
_FULL_DISK = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return text


def _usage_error(parser: argparse.ArgumentParser, message: str):
    """argparse's error(): usage text and exit status 2; here one ConfigError like every other mistake."""
    raise ConfigError(f'{message} (usage: {" ".join(parser.format_usage().split())[7:]})')


def is_user_error(e: BaseException) -> bool:
    # a config key a component does not take surfaces as TypeError from its constructor
    return (isinstance(e, USER_ERRORS) or (isinstance(e, TypeError) and 'unexpected keyword argument' in str(e))
            or (isinstance(e, OSError) and e.errno in _FULL_DISK))


def run_tool(main, argv=None):
    """Call ``main(argv)``; a user error prints ``error: <message>`` on stderr and exits with status 1.

    Command-line mistakes that argparse reports (a missing argument, an unknown flag, a bad choice) are
    user errors too: exit status 1 and one ``error:`` line (``--help`` still prints and exits 0).
    """
    try:
        with mock.patch.object(argparse.ArgumentParser, 'error', _usage_error):
            return main(argv)
    except Exception as e:
        user = is_user_error(e)
        if not user or os.environ.get('BAGTRICKS_TRACEBACK') == '1':
            raise
        hint = ' (a config or --cfg-options key that this component does not take)' if isinstance(e, TypeError) else ''
        sys.stdout.flush()
        print(f'error: {one_line(e)}{hint}', file=sys.stderr, flush=True)
        raise SystemExit(1) from None
