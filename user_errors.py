"""The user-error classes: a mistake in what the user gave (config, command line, weights, data) that
the tools report as one ``error: ...`` line (tool_boundary), not a traceback.

Standard library only, at the bottom of the import graph: a dataset or backbone module raises these
without importing the engine package (and its Runner). Specific errors (``VOCLayoutError``,
``OutputPathError``, ...) live next to the code that raises them and derive from these.
"""


class UserInputError(ValueError):
    """Base of every user error (bad layout, unreadable file, wrong content, bad value)."""


class ConfigError(UserInputError):
    """A config or command-line value that names nothing or contradicts the config."""


class CheckpointError(UserInputError):
    """A weights file that cannot be read, or that does not fit the model it is loaded into."""


class PreflightError(UserInputError):
    """A check before training failed (data, classes, batch size, work dir, resume state)."""


# What the guard reports as one line: the classes above and the OS errors of a wrong path.
USER_ERRORS = (UserInputError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)
