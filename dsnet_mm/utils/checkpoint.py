"""Checkpoints by path or URL, and what the tools and the strict loader share.

``read_checkpoint`` takes a path (``str`` / ``PathLike``, ``~`` expanded), an ``http(s)://`` URL
(torch's hub cache, :mod:`dsnet_mm.utils.download`) or another mmengine scheme, and reads it with
the safe readers of :mod:`dsnet_mm.utils.safe_load`. ``check_state_dict_fits`` says how many
tensors of a module a state dict fills and what does not fit.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Callable, Optional

import torch

from .download import is_url, load_url, load_with_mmengine, mmengine_scheme
from .safe_load import read_checkpoint_file

_CHECKPOINT_EXTS = ('.pth', '.pt', '.pth.tar', '.tar', '.pdparams', '.ckpt', '.bin')

# What to do about a missing file depends on what it was for; init weights by default.
PRETRAINED_ARG_HINT = (
    "This file is named by the config's model.pretrained (mmseg's EncoderDecoder passes it to "
    'the backbone), often a ResNet checkpoint left over from the base config: set '
    'model.pretrained=None and give the DS-Net weights in model.backbone.init_cfg, or put a '
    'DS-Net checkpoint in model.pretrained.')
BACKBONE_WEIGHTS_HINT = (
    'Check the path, produce it with tools/model_converters/dsnet_to_mmpretrain.py (from reference '
    'DS-Net or PaddleClas weights) or an mmpretrain ImageNet run, or train from scratch with '
    'init_cfg=None.')

def read_checkpoint(path, map_location='cpu', missing_hint: Optional[str] = None):
    """Load a checkpoint file, with a clear error for a missing file (``missing_hint`` says what
    to do; it defaults to advice about backbone weights), a truncated, corrupt or foreign file,
    and a file that holds objects safe loading refuses (named).

    The reader is chosen by the file's bytes, not its name (:func:`read_checkpoint_file`).
    ``path`` may be a ``str`` or ``os.PathLike``, with ``~`` expanded; or an ``http(s)://`` URL
    (downloaded once into torch's hub cache, checked by reading it back, then loaded); or another
    mmengine scheme such as ``open-mmlab://`` (left to mmengine's ``CheckpointLoader``); see
    ``dsnet_mm/utils/download.py``."""
    path = os.fspath(path)
    if is_url(path):
        return load_url(path, map_location)
    if mmengine_scheme(path):
        return load_with_mmengine(path, map_location)
    path = osp.expanduser(path)
    if osp.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith(_CHECKPOINT_EXTS))
        raise IsADirectoryError(
            f'{path!r} is a directory, not a checkpoint file: name the file'
            + (f' (it holds {name_examples(inside)})' if inside else '') + '.'
            + (f' {missing_hint}' if missing_hint else ''))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'checkpoint not found: {path!r}. {missing_hint or BACKBONE_WEIGHTS_HINT}')
    return read_checkpoint_file(path, map_location)


def extract_state_dict(ckpt) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a checkpoint: ``state_dict`` (mmengine), ``model`` / ``model_ema``
    (reference DeiT-style), or the dict itself (flat)."""
    if not isinstance(ckpt, dict):
        raise TypeError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    for key in ('state_dict', 'model', 'model_ema'):
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    sd = OrderedDict((k, v) for k, v in ckpt.items() if torch.is_tensor(v))
    if sd and all(k.startswith('module.') for k in sd):   # saved from DataParallel / DDP
        sd = OrderedDict((k[7:], v) for k, v in sd.items())
    return sd


def save_checkpoint_atomic(obj, path: str):
    """``torch.save`` to a temporary file beside ``path``, renamed over it when complete: an
    interrupted or failed save leaves neither a partial ``path`` nor the temporary file."""
    if osp.isdir(path):
        raise IsADirectoryError(f'{path!r} is a directory: give the path of the file to write')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp.{os.getpid()}'
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def check_conversion_paths(src: str, dst: str, force: bool = False):
    """What a converter checks before it reads anything: DST must name a file, and never SRC
    itself unless ``force`` (then the atomic save replaces SRC only once the result is whole)."""
    stem = osp.splitext(osp.basename(str(src).rstrip('/')))[0] or 'converted'
    if osp.isdir(dst):
        raise IsADirectoryError(f'DST {dst!r} is a directory: give the path of the file to '
                                f'write, e.g. {osp.join(dst, stem + "_converted.pth")!r}')
    if not force and not is_url(src) and osp.isfile(src) and osp.exists(dst) and \
            osp.samefile(src, dst):
        raise FileExistsError(f'DST {dst!r} is SRC: writing it would replace the input '
                              'checkpoint. Give another DST, or --force to replace SRC (written '
                              'to a temporary file first, renamed over SRC when complete).')


def key_prefixes(keys, n=4):
    seen = OrderedDict()
    for k in keys:
        seen.setdefault(k.split('.')[0] + '.', None)
    return list(seen)[:n]


def name_examples(names, n=3):
    names = list(names)
    more = f' (+{len(names) - n} more)' if len(names) > n else ''
    return ', '.join(names[:n]) + more


def check_state_dict_fits(module: torch.nn.Module, state_dict, source: str = 'the checkpoint',
                          hint: Optional[Callable] = None):
    """Raise ``ValueError`` unless ``state_dict`` holds exactly ``module``'s tensors and shapes."""
    own = module.state_dict()
    matched = [k for k in own if k in state_dict and state_dict[k].shape == own[k].shape]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mis_shaped = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}'
                  for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if not (missing or unexpected or mis_shaped):
        return len(matched)
    lines = [f'{source} does not fit {module.__class__.__name__}: {len(matched)}/{len(own)} '
             'tensors match.']
    if missing:
        lines.append(f'  {len(missing)} missing: {name_examples(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected: {name_examples(unexpected)}')
    if mis_shaped:
        lines.append(f'  {len(mis_shaped)} with other shapes (checkpoint vs model): {name_examples(mis_shaped, 2)}')
    fix = hint(state_dict, missing, unexpected, mis_shaped) if hint else None
    lines.append('  Likely fix: ' + (fix or 'use a checkpoint of this exact model and configuration.'))
    raise ValueError('\n'.join(lines))
