"""The tools' entry guard: a user's mistake ends the run with one ``error: ...`` line, not a traceback.

What counts as the user's mistake: config and command-line errors, weights files that do not fit,
missing files, data that fails the dataset checks or the preflight, a config key that a component's
constructor does not take (``--cfg-options`` lets new keys into components). Anything else is a bug and keeps
its traceback. ``BAGTRICKS_TRACEBACK=1`` shows the traceback for user errors too.
"""
from __future__ import annotations

import os
import sys

from backbones.checkpoint import CheckpointError

from .cli import ConfigError


class UserInputError(ValueError):
    """Base of the task packages' data errors (bad layout, unreadable file, wrong content)."""


class PreflightError(UserInputError):
    """A check before training failed (data, classes, batch size, work dir, resume state)."""


USER_ERRORS = (UserInputError, ConfigError, CheckpointError, FileNotFoundError, NotADirectoryError)


def one_line(exc: BaseException) -> str:
    text = ' '.join(str(exc).split()) or type(exc).__name__
    return text


def run_tool(main, argv=None):
    """Call ``main(argv)``; a user error prints ``error: <message>`` on stderr and exits with status 1."""
    try:
        return main(argv)
    except Exception as e:
        # a config key a component does not take surfaces as TypeError from its constructor
        user = isinstance(e, USER_ERRORS) or (isinstance(e, TypeError) and 'unexpected keyword argument' in str(e))
        if not user or os.environ.get('BAGTRICKS_TRACEBACK') == '1':
            raise
        hint = ' (a config or --cfg-options key that this component does not take)' if isinstance(e, TypeError) else ''
        sys.stdout.flush()
        print(f'error: {one_line(e)}{hint}', file=sys.stderr, flush=True)
        raise SystemExit(1) from None
