"""``--cfg-options`` checked before mmengine merges them: a key that names nothing in the config, a
list index out of range or a value of the wrong type is one :class:`ConfigError` naming the key."""
from __future__ import annotations

import difflib
import inspect

from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from user_errors import ConfigError

# Top-level keys a config may add without declaring them first: the Runner's arguments (Runner.from_cfg
# passes each by name) and the keys read from the config itself.
RUNNER_KEYS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self'} | {
    'custom_imports',  # Config.fromfile imports the modules it names; never a Runner argument
    'runner_type',  # the Runner class RUNNERS builds (runner_from_cfg, mmdet's and mmseg's own tools)
    'find_unused_parameters',  # Runner.wrap_model reads it from the config for DDP
}
# The config root is walked as a mapping like its sub-dicts (Config iterates, indexes and .get()s its items).
_MAPPING = (dict, Config)


def apply_cfg_options(cfg: Config, options: dict) -> None:
    """Check ``options`` against ``cfg``, then merge them into it."""
    check_cfg_options(cfg, options)
    _open_none_parents(cfg, options)
    try:
        cfg.merge_from_dict(options)
    except (TypeError, KeyError, ValueError) as e:
        raise ConfigError(f'--cfg-options cannot be applied: {" ".join(str(e).split())}') from e


def check_cfg_options(cfg: Config, options: dict) -> None:
    """Reject ``--cfg-options`` keys that name nothing in the config, suggesting the closest names.

    A new leaf key is accepted only inside a component (a dict with a ``type``), where it is a
    constructor argument the component validates itself, and at top level for Runner arguments.
    """
    for key in options:
        node, path = cfg, []
        parts = key.split('.')
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, (list, tuple)):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f'--cfg-options {key}: {".".join(path) or "config"} is a list of {len(node)} '
                                   f'items; expected an index 0..{len(node) - 1}, got {part!r}')
                node = node[int(part)]
            elif isinstance(node, _MAPPING):
                if part not in node:
                    if last and ('type' in node or (not path and part in RUNNER_KEYS)):
                        break
                    close = difflib.get_close_matches(part, [str(k) for k in node], n=3, cutoff=0.5)
                    where = '.'.join(path) or 'the config'
                    hint = f'; closest: {", ".join(".".join(path + [c]) for c in close)}' if close else ''
                    raise ConfigError(f'--cfg-options {key}: unknown key {part!r} in {where}{hint}')
                node = node[part]
            else:
                break  # replacing a scalar by a structure is the user's explicit choice
            path.append(part)
        else:
            _check_value_type(key, node, options[key])


def _open_none_parents(cfg: Config, options: dict) -> None:
    """``model.distill.teacher_config=X`` where the config has ``distill=None``: the None becomes an
    empty dict to fill (mmengine would refuse to merge a dict into None)."""
    for key in options:
        node = cfg
        for part in key.split('.')[:-1]:
            if isinstance(node, _MAPPING):
                if node.get(part, ...) is None:
                    node[part] = ConfigDict()
                node = node.get(part)
            elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break


def _kind(value) -> str | None:
    if isinstance(value, bool):
        return 'a boolean (True or False)'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    if isinstance(value, str):
        return 'a string'
    return None


def _check_value_type(key: str, old, new) -> None:
    """A scalar the config holds keeps its type: ``num_classes=abc`` or ``lr=fast`` is refused here,
    not deep inside a constructor. A number accepts any number (configs write 0 for 0.0; a constructor
    that needs an integer says so); None in the config (or as the new value) accepts anything."""
    expected = _kind(old)
    if expected is None or new is None:
        return
    fits = (isinstance(new, bool) if isinstance(old, bool) else
            isinstance(new, (int, float)) and not isinstance(new, bool) if isinstance(old, (int, float)) else
            isinstance(new, str))
    if not fits:
        raise ConfigError(f'--cfg-options {key}={new!r}: expected {expected} (the config has {old!r})')
