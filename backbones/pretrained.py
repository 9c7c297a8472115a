"""``init_cfg=dict(type='Pretrained', checkpoint=...)`` and ``pretrained=...``: what mmengine accepts,
always loaded through the project's strict converter.

* Names: a local path, ``torchvision://NAME`` (``modelzoo://``), ``open-mmlab://NAME`` (``openmmlab://``),
  ``mmcls://NAME`` and ``http(s)://URL``, resolved by mmengine's own tables
  (``mmengine.runner.checkpoint``: torchvision's weight URLs, ``hub/openmmlab.json`` plus
  ``$MMENGINE_HOME/open_mmlab.json``, the deprecated-name map, ``hub/mmcls.json``) to the file mmengine
  would read: ``<torch.hub.get_dir()>/checkpoints/<file name of the URL>`` (``$TORCH_HOME/hub/...``,
  default ``~/.cache/torch/hub/checkpoints``), or a path under ``$MMENGINE_HOME`` for open-mmlab
  entries that are not URLs.
* ``timm://<model>.<tag>`` (e.g. ``timm://resnet50d.gluon_in1k``, GluonCV's ResNet-50-D): the
  ``model.safetensors`` of the Hugging Face repo ``timm/<model>.<tag>`` in huggingface_hub's cache layout
  (:func:`hf_hub_cache`: ``$HF_HUB_CACHE``, default ``$HF_HOME/hub``, default
  ``~/.cache/huggingface/hub``; ``models--timm--<model>.<tag>/refs/main`` names the snapshot,
  ``snapshots/<rev>/model.safetensors`` is the file), looked up with huggingface_hub's
  ``try_to_load_from_cache``. It is read with ``safetensors`` (no pickle). ``hf download timm/<model>.<tag>
  model.safetensors`` puts it there; so does ``BAGTRICKS_DOWNLOAD=1`` (``hf_hub_download``, rank 0 only).
* The cache is looked at first and nothing is downloaded unless ``BAGTRICKS_DOWNLOAD=1``: a URL whose
  file is not cached is one :class:`CheckpointError` naming the URL and the path to put the file at.
  With ``BAGTRICKS_DOWNLOAD=1`` the file is fetched there by ``torch.hub.download_url_to_file`` (the
  sha256 prefix in names like ``resnet50-0676ba61.pth`` is checked), by rank 0 only in a
  distributed run.
* Loading: ``backbones.checkpoint`` reads the file with the restricted unpickler, converts any
  supported layout (torchvision, timm, mmdet/mmseg/mmpretrain, bagtricks) and checks that it fits the
  backbone exactly, except that modules a plain ResNet lacks (DCN offsets, plugins: the backbone's
  ``extension_keys()``) may be absent from the file as a whole; they then keep their initialisation.
"""
from __future__ import annotations

import difflib
import os
import re
from typing import Mapping
from urllib.parse import urlparse

import torch
from mmengine.logging import print_log

from safe_read import load_weights_file
from user_errors import CheckpointError

from .checkpoint import check_fits, convert_backbone_state, state_dict_of

_SCHEMES = ('torchvision://', 'modelzoo://', 'open-mmlab://', 'openmmlab://', 'mmcls://', 'timm://', 'http://',
            'https://')
_HASH = re.compile(r'-([a-f0-9]{6,})\.')  # torch.hub's convention: name-<sha256 prefix>.ext


def cache_path(url: str) -> str:
    """Where mmengine (through torch.hub's ``load_state_dict_from_url``) keeps the file of ``url``."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints', os.path.basename(urlparse(url).path))


def _lookup(table: Mapping[str, str], name: str, scheme: str) -> str:
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f' (closest: {", ".join(scheme + c for c in close)})' if close else ''
        raise CheckpointError(f'{scheme}{name}: no such name in mmengine\'s model table{hint}')
    return table[name]


TIMM_WEIGHTS = 'model.safetensors'  # the file of a timm hub repo that is read (its pytorch_model.bin is a pickle)
_TIMM_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]*\.[A-Za-z0-9][A-Za-z0-9_-]*$')


def hf_hub_cache() -> str:
    """huggingface_hub's cache folder, from the environment as it is now (huggingface_hub.constants reads
    the same variables once, at import): ``$HF_HUB_CACHE`` (or the older ``$HUGGINGFACE_HUB_CACHE``), else
    ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``."""
    env = os.environ.get
    home = env('HF_HOME') or os.path.join(env('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache'),
                                          'huggingface')
    cache = env('HF_HUB_CACHE') or env('HUGGINGFACE_HUB_CACHE') or os.path.join(home, 'hub')
    return os.path.expandvars(os.path.expanduser(cache))


def timm_repo_id(name: str) -> str:
    """``timm://<model>.<tag>`` -> the Hugging Face repo ``timm/<model>.<tag>``."""
    model = name[len('timm://'):]
    if not _TIMM_NAME.match(model) or len(model) > 96:
        raise CheckpointError(f'{name}: expected timm://<model>.<tag> as timm names its hub weights, e.g. '
                              'timm://resnet50d.gluon_in1k (see timm.list_pretrained())')
    return f'timm/{model}'


def _download_hf(repo_id: str, cache: str) -> None:
    from mmengine.dist import barrier, get_dist_info
    rank, world = get_dist_info()
    if rank == 0:
        from huggingface_hub import hf_hub_download
        print_log(f'downloading {TIMM_WEIGHTS} of {repo_id} into {cache} (BAGTRICKS_DOWNLOAD=1)', logger='current')
        try:
            hf_hub_download(repo_id, TIMM_WEIGHTS, cache_dir=cache)
        except Exception as e:  # noqa: BLE001  network, unknown repo, no such file, offline mode: the download's
            raise CheckpointError(f'could not download {TIMM_WEIGHTS} of {repo_id} into {cache}: '
                                  f'{type(e).__name__}: {" ".join(str(e).split())[:200]}') from e
    if world > 1:
        barrier()


def resolve_timm(name: str) -> str:
    """The cached ``model.safetensors`` of ``timm://<model>.<tag>`` (downloaded first only with
    ``BAGTRICKS_DOWNLOAD=1``); a missing one is one CheckpointError naming where it was looked for and the
    command that puts it there."""
    from huggingface_hub import try_to_load_from_cache
    repo_id, cache = timm_repo_id(name), hf_hub_cache()
    found = try_to_load_from_cache(repo_id, TIMM_WEIGHTS, cache_dir=cache)
    if not isinstance(found, str) and os.environ.get('BAGTRICKS_DOWNLOAD') == '1':
        _download_hf(repo_id, cache)
        found = try_to_load_from_cache(repo_id, TIMM_WEIGHTS, cache_dir=cache)
    if isinstance(found, str):
        return found
    folder = os.path.join(cache, 'models--' + repo_id.replace('/', '--'))
    if found is not None:  # huggingface_hub's marker: the hub said the repo has no such file
        why = f'the cache in {folder} records that {repo_id} has no {TIMM_WEIGHTS}'
    elif not os.path.isdir(folder):
        why = f'there is no {folder}'
    elif not os.path.isfile(os.path.join(folder, 'refs', 'main')):
        why = f'{folder} has no refs/main naming a snapshot'
    else:
        why = f'{folder}/snapshots/<revision in refs/main>/{TIMM_WEIGHTS} does not exist'
    raise CheckpointError(f'{name} is not in the Hugging Face cache ({why}; the cache is $HF_HUB_CACHE, '
                          f'now {cache}): run `hf download {repo_id} {TIMM_WEIGHTS}` (or `huggingface-cli '
                          f'download {repo_id} {TIMM_WEIGHTS}`), or set BAGTRICKS_DOWNLOAD=1 to download it; '
                          'nothing was downloaded')


def checkpoint_url(name: str) -> str | None:
    """The URL (or mmengine-home-relative path) mmengine maps a ``scheme://`` name to; None for a local path.
    A ``timm://`` name maps to its Hugging Face repo (resolved by :func:`resolve_timm`)."""
    from mmengine.runner import checkpoint as mmckpt
    if name.startswith(('http://', 'https://')):
        return name
    if name.startswith('timm://'):
        return f'https://huggingface.co/{timm_repo_id(name)}'
    if name.startswith(('torchvision://', 'modelzoo://')):
        scheme = name[:name.index('://') + 3]
        return _lookup(mmckpt.get_torchvision_models(), name[len(scheme):], scheme)
    if name.startswith(('open-mmlab://', 'openmmlab://')):
        scheme = name[:name.index('://') + 3]
        key = name[len(scheme):]
        key = mmckpt.get_deprecated_model_names().get(key, key)
        return _lookup(mmckpt.get_external_models(), key, scheme)
    if name.startswith('mmcls://'):
        return _lookup(mmckpt.get_mmcls_models(), name[len('mmcls://'):], 'mmcls://')
    if re.match(r'^[a-z][a-z0-9+.-]*://', name):
        raise CheckpointError(f'{name}: unsupported checkpoint scheme; expected a local path or one of '
                              f'{", ".join(_SCHEMES)}')
    return None


def _download(url: str, dst: str) -> None:
    from mmengine.dist import barrier, get_dist_info
    rank, world = get_dist_info()
    if rank == 0 and not os.path.isfile(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        m = _HASH.search(os.path.basename(dst))
        print_log(f'downloading {url} to {dst} (BAGTRICKS_DOWNLOAD=1)', logger='current')
        try:
            torch.hub.download_url_to_file(url, dst, hash_prefix=m.group(1) if m else None, progress=False)
        except (OSError, RuntimeError) as e:  # URLError is an OSError; a hash mismatch a RuntimeError
            raise CheckpointError(f'could not download {url} to {dst}: {" ".join(str(e).split())[:200]}') from e
    if world > 1:
        barrier()


def resolve_checkpoint(name: str) -> str:
    """The local file for a checkpoint name (path or mmengine URL scheme); raises if it is not there."""
    name = os.path.expanduser(str(name))
    if name.startswith('timm://'):
        return resolve_timm(name)
    url = checkpoint_url(name)
    if url is None:
        return name
    if not url.startswith(('http://', 'https://')):  # open-mmlab entry naming a file in mmengine's home
        from mmengine.runner.checkpoint import _get_mmengine_home
        path = os.path.join(_get_mmengine_home(), url)
        if not os.path.isfile(path):
            raise CheckpointError(f'{name}: mmengine maps it to {path}, which does not exist')
        return path
    path = cache_path(url)
    if not os.path.isfile(path):
        if os.environ.get('BAGTRICKS_DOWNLOAD') == '1':
            _download(url, path)
        else:
            shown = name if name == url else f'{name} ({url})'
            raise CheckpointError(f'{shown} is not in the local cache: put the file at {path} '
                                  '(the torch hub cache, $TORCH_HOME/hub/checkpoints), or set BAGTRICKS_DOWNLOAD=1 '
                                  'to download it; nothing was downloaded')
    return path


def split_init_cfg(init_cfg) -> tuple[dict | None, list]:
    """(the Pretrained entry or None, the other entries) of a dict or list ``init_cfg``."""
    from mmengine.model.weight_init import PretrainedInit
    if not init_cfg:
        return None, []
    entries = list(init_cfg) if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    pretrained = [c for c in entries if isinstance(c, Mapping) and c.get('type') in ('Pretrained', PretrainedInit)]
    if len(pretrained) > 1:
        raise CheckpointError(f'init_cfg has {len(pretrained)} Pretrained entries; expected at most one')
    if pretrained and 'checkpoint' not in pretrained[0]:
        raise CheckpointError(f'init_cfg {dict(pretrained[0])}: a Pretrained entry needs checkpoint=PATH or URL')
    others = [c for c in entries if not any(c is p for p in pretrained)]
    return (dict(pretrained[0]) if pretrained else None), others


def apply_pretrained(cfg, path: str) -> None:
    """``--pretrained``: start the model config's backbone from ``path`` (a file, or a name such as
    ``torchvision://resnet50`` or ``timm://resnet50d.gluon_in1k`` resolved in its cache when the backbone
    is initialised); the backbone loads it strictly and logs
    what matched."""
    if checkpoint_url(path) is None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f'--pretrained: no such file {path}')
        path = os.path.abspath(path)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
    if cfg.model.get('pretrained'):  # mmseg's model-level spelling would contradict init_cfg
        cfg.model.pretrained = None


def load_pretrained(backbone: torch.nn.Module, checkpoint: str, prefix: str | None = None) -> int:
    """Load ``checkpoint`` (path or URL name) into ``backbone`` strictly; returns the tensors loaded.

    ``prefix`` keeps only the keys under it, stripped (mmengine's ``Pretrained(prefix='backbone.')``).
    """
    path = resolve_checkpoint(checkpoint)
    source = path if os.path.expanduser(str(checkpoint)) == path else f'{checkpoint} ({path})'
    state = state_dict_of(load_weights_file(path))
    if prefix:
        p = prefix.rstrip('.') + '.'
        state = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        if not state:
            raise CheckpointError(f'{source}: no key starts with prefix {p!r}')
    target = backbone.state_dict()
    state = convert_backbone_state(state, target)
    extension = set(backbone.extension_keys()) if hasattr(backbone, 'extension_keys') else set()
    fresh = extension if extension and not extension & set(state) else set()
    what = f'{type(backbone).__name__}(depth={getattr(backbone, "depth", "?")}, ' \
           f'variant={getattr(backbone, "variant", "?")!r})'
    check_fits(state, {k: v for k, v in target.items() if k not in fresh}, what, source)
    backbone.load_state_dict(state, strict=False)  # only num_batches_tracked (and fresh extensions) may be absent
    kept = f'; {len(fresh)} DCN-offset/plugin tensors keep their initialisation' if fresh else ''
    print_log(f'loaded {len(state)}/{len(target)} backbone tensors from {source}{kept}', logger='current')
    return len(state)
