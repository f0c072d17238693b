"""DS-Net checkpoints in the public layouts <-> ``DSNet``'s parameter names.

The public weights come in two layouts: the reference PyTorch code (a timm/DeiT port:
``patch_embed1.proj``, ``blocks1.0.conv1``, ...) and PaddleClas (the same names, BatchNorm
statistics as ``_mean`` / ``_variance``, Linear weights stored [in, out]). ``checkpoint_filter_fn``
maps both to ours; it is the one conversion: ``DSNet`` applies it when a state dict is loaded into
it (``load_state_dict``, mmengine's ``load_checkpoint``, ``init_cfg`` Pretrained), and
tools/model_converters/dsnet_to_mmpretrain.py writes its result to a file.
``to_reference`` is its inverse (tools/model_converters/mmpretrain_to_dsnet.py).

``load_checkpoint_strict`` is how ``DSNet`` takes ``init_cfg`` weights: all tensors or an error.
mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs mismatches, so a wrong
prefix or variant would silently train from random weights; this says how many tensors matched,
shows some missing / unexpected / mis-shaped names and the likely fix (``explain_mismatch``).
"""
import re
from collections import OrderedDict
from functools import partial
from typing import Dict, Optional

import torch
import torch.nn as nn

from ...utils.checkpoint import (PRETRAINED_ARG_HINT, check_state_dict_fits, extract_state_dict,
                                 key_prefixes, name_examples, read_checkpoint)

_REF_BLOCK_RE = re.compile(r'^blocks([1-4])\.(\d+)\.(.+)$')
_REF_PATCH_EMBED_RE = re.compile(r'^patch_embed[1-4]\.proj\.')
_BLOCK_RE = re.compile(r'^stages\.(\d)\.(\d+)\.(.+)$')
# A DS-Net state dict in our names has DS-Block parts under stages.<i>.<j>.; other backbones share
# top-level names (Swin's stages.0.blocks.0..., ResNet's layer1).
DS_BLOCK_KEY_RE = re.compile(r'^stages\.\d\.\d+\.(mixer|pos_embed|ffn)\.')
_REF_TO_OURS = OrderedDict([
    ('pos_embed.', 'pos_embed.'),
    ('norm1.', 'norm1.'),
    ('conv1.', 'mixer.proj_in.'),
    ('norm_conv1.', 'mixer.intra.local_norm.'),
    ('conv.', 'mixer.intra.local_conv.'),
    ('norm_sa1.', 'mixer.intra.global_norm.'),
    ('channel_up.', 'mixer.intra.global_qkv.'),
    ('norm_conv2.', 'mixer.inter.local_norm.'),
    ('cross_channel_up_conv.', 'mixer.inter.local_qkv.'),
    ('norm_sa2.', 'mixer.inter.global_norm.'),
    ('cross_channel_up_sa.', 'mixer.inter.global_qkv.'),
    ('fuse_channel_conv.', 'mixer.inter.local_proj.'),
    ('fuse_channel_sa.', 'mixer.inter.global_proj.'),
    ('conv2.', 'mixer.proj_out.'),
    ('norm2.', 'norm2.'),
    ('mlp.fc1.', 'ffn.fc1.'),
    ('mlp.fc2.', 'ffn.fc2.'),
])
# Linear layers; PaddleClas stores their weights as [in, out].
_REF_LINEARS = ('channel_up.', 'cross_channel_up_sa.', 'fuse_channel_conv.', 'fuse_channel_sa.')


def _ref_block_key(rest: str) -> str:
    for ref, ours in _REF_TO_OURS.items():
        if rest.startswith(ref):
            return ours + rest[len(ref):]
    raise KeyError(rest)


def is_paddle_layout(state_dict) -> bool:
    return any(k.endswith('._mean') or k.endswith('._variance') for k in state_dict)


def has_reference_names(state_dict) -> bool:
    return any(_REF_BLOCK_RE.match(k) or _REF_PATCH_EMBED_RE.match(k) for k in state_dict)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: Optional[nn.Module] = None):
    """Reference DS-Net weights (PyTorch DeiT port or PaddleClas) -> ``DSNet``'s names.

    A dict already in our names is returned as it is (the same object). PaddleClas: BN
    ``_mean``/``_variance`` become ``running_mean``/``running_var`` (with a
    ``num_batches_tracked``), and Linear weights stored [in, out] are transposed. The
    1000-class classifier stays as ``head.weight`` / ``head.bias``, unless ``model`` is given
    and has no ``head`` (the ``DSNet`` backbone), which drops it.
    """
    paddle = is_paddle_layout(state_dict)
    if not paddle and not has_reference_names(state_dict):
        return state_dict
    keep_head = model is None or hasattr(model, 'head')
    out = OrderedDict()
    for key, value in state_dict.items():
        value = torch.as_tensor(value)
        if paddle:
            key = key.replace('._mean', '.running_mean').replace('._variance', '.running_var')
        m = _REF_BLOCK_RE.match(key)
        if m:
            stage, idx, rest = int(m.group(1)) - 1, m.group(2), m.group(3)
            if paddle and rest.endswith('.weight') and rest.startswith(_REF_LINEARS):
                value = value.t()
            key = f'stages.{stage}.{idx}.{_ref_block_key(rest)}'
        elif _REF_PATCH_EMBED_RE.match(key):
            key = f'patch_embeds.{int(key[11]) - 1}.{key[13:]}'
        elif key.startswith('head.'):
            if not keep_head:
                continue
            if paddle and key.endswith('.weight'):
                value = value.t()
        out[key] = value   # 'norm.*' and keys already in our layout as they are
    if paddle:   # PaddleClas keeps no BN step counter
        for key in list(out):
            if key.endswith('.running_mean'):
                out.setdefault(key[:-len('running_mean')] + 'num_batches_tracked',
                               torch.tensor(0, dtype=torch.long))
    return out


def to_reference(backbone_state_dict, head_state_dict=None):
    """Inverse of ``checkpoint_filter_fn``: our names -> the reference PyTorch layout."""
    ours_to_ref = {v: k for k, v in _REF_TO_OURS.items()}
    by_length = sorted(ours_to_ref, key=len, reverse=True)
    out = OrderedDict()
    for key, value in backbone_state_dict.items():
        m = _BLOCK_RE.match(key)
        if m:
            rest = m.group(3)
            ours = next(o for o in by_length if rest.startswith(o))
            key = f'blocks{int(m.group(1)) + 1}.{m.group(2)}.{ours_to_ref[ours]}{rest[len(ours):]}'
        elif key.startswith('patch_embeds.'):
            key = f'patch_embed{int(key[13]) + 1}.{key[15:]}'
        out[key] = value
    for key, value in (head_state_dict or {}).items():
        out[f'head.{key}'] = value
    return out


def block_depths(backbone_state_dict):
    """Blocks per stage of a (converted) backbone state dict."""
    depths = [0] * 4
    for key in backbone_state_dict:
        m = _BLOCK_RE.match(key)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths[s], i + 1)
    return depths


def stage_widths(backbone_state_dict):
    """Width of each stage of a (converted) backbone state dict, from its patch embeddings
    (None for a stage whose embedding the dict does not hold)."""
    widths = [None] * 4
    for i in range(4):
        w = backbone_state_dict.get(f'patch_embeds.{i}.proj.weight')
        if w is not None:
            widths[i] = int(w.shape[0])
    return widths


def _preset(depths, widths=None) -> Optional[str]:
    from .dsnet import DSNet   # the presets; the model module imports this one
    for name in ('tiny', 'small', 'base'):
        preset = DSNet.arch_zoo[name]
        if preset['depths'] == list(depths) and all(
                w is None or w == c for w, c in zip(widths or [], preset['channels'])):
            return name
    return None


def detect_arch(backbone_state_dict) -> str:
    """Name the preset whose depths (and widths) match a (converted) backbone state dict."""
    depths = block_depths(backbone_state_dict)
    name = _preset(depths, stage_widths(backbone_state_dict))
    if name is None:
        raise ValueError(f'the checkpoint has DS-Net depths {depths}, which match no preset '
                         '(tiny [2, 2, 4, 1], small [3, 4, 8, 3], base [3, 4, 28, 3])')
    return name


def describe_arch(depths, widths) -> str:
    """'DS-Net-T (depths 2, 2, 4, 1)', or the widths too when they are not a preset's."""
    name = _preset(depths, widths)
    numbers = f'depths {", ".join(map(str, depths))}'
    if name is None:
        numbers = f'channels {", ".join(str(w) for w in widths)}; ' + numbers
        return f'a custom DS-Net ({numbers})'
    return f'DS-Net-{name[0].upper()} ({numbers})'


def arch_mismatch(backbone_state_dict, model) -> Optional[str]:
    """Why a (converted) DS-Net backbone state dict is of another arch than ``model`` (a
    ``DSNet``), or None when it is not: every stage it has blocks of must have the model's
    depth, and every stage it has the patch embedding of, the model's width. A dict with no
    DS-Block (another backbone, a partial dict without blocks) is not judged here."""
    if not any(DS_BLOCK_KEY_RE.match(k) for k in backbone_state_dict):
        return None
    depths, widths = block_depths(backbone_state_dict), stage_widths(backbone_state_dict)
    own_depths, own_widths = model.arch_settings['depths'], model.arch_settings['channels']
    if all(d in (0, o) for d, o in zip(depths, own_depths)) and \
            all(w in (None, o) for w, o in zip(widths, own_widths)):
        return None
    widths = [o if w is None else w for w, o in zip(widths, own_widths)]
    ckpt, own = describe_arch(depths, widths), describe_arch(own_depths, own_widths)
    name, own_name = _preset(depths, widths), _preset(own_depths, own_widths)
    fix = (f"use a DS-Net-{name[0].upper()} config (backbone arch='{name}', e.g. "
           f'configs/**/*dsnet_{name[0]}_*.py)' if name else 'build the model with the arch of the '
           'checkpoint')
    other = (f'a DS-Net-{own_name[0].upper()} checkpoint' if own_name else
             "a checkpoint of the model's arch")
    return f'this checkpoint is {ckpt}; the model is {own}: {fix}, or load {other}'


# ------------------------------------------------------------------ strict loading


def explain_mismatch(module: torch.nn.Module, state_dict, missing, unexpected, mis_shaped,
                     from_pretrained_arg: bool = False) -> Optional[str]:
    """The likely cause of a checkpoint that does not fit a ``DSNet`` ``module`` (the "Likely
    fix" of ``check_state_dict_fits``), from the keys of the (converted) ``state_dict``."""
    pretrained_arg = PRETRAINED_ARG_HINT if from_pretrained_arg else ''
    heads = {k.split('.')[0] for k in state_dict}
    if heads & {'neck', 'rpn_head', 'roi_head', 'bbox_head', 'decode_head', 'head', 'backbone'}:
        return ("the keys are a whole model's (neck/head/backbone); select the backbone with "
                "init_cfg prefix='backbone.'")
    if not any(DS_BLOCK_KEY_RE.match(k) for k in state_dict):
        return (f'this is not a DS-Net checkpoint: its keys look like another backbone\'s '
                f'({name_examples(state_dict)}). Use DS-Net weights (converted with '
                f'tools/model_converters/dsnet_to_mmpretrain.py). {pretrained_arg}').strip()
    wrong_arch = arch_mismatch(state_dict, module)
    if wrong_arch:
        return wrong_arch
    if mis_shaped:
        return 'the channel widths differ: the checkpoint comes from another arch dict'
    return None


def load_checkpoint_strict(module: torch.nn.Module, filename: str, prefix: Optional[str] = None,
                           map_location='cpu', logger=None,
                           from_pretrained_arg: bool = False) -> int:
    """Load ``filename`` into the ``DSNet`` ``module``, all tensors or an error.

    The module's ``load_state_dict`` renames reference / PaddleClas keys (``DSNet`` converts
    whatever is loaded into it); when the weights do not fit, the error counts and names the
    mismatches and gives the likely fix (:func:`explain_mismatch`).

    Args:
        prefix: keep only the keys under it and strip it (``'backbone.'`` for a classifier or a
            detector checkpoint); None takes the whole dict; ``'auto'`` is ``'backbone.'`` when
            the file has such keys, else None.
        from_pretrained_arg: the file was named by mmseg's ``model.pretrained``: the errors
            say so, since that is often a leftover of a base config.
    Returns:
        the number of tensors loaded.
    """
    missing_hint = PRETRAINED_ARG_HINT if from_pretrained_arg else None
    sd = extract_state_dict(read_checkpoint(filename, map_location, missing_hint))
    if prefix == 'auto':
        prefix = 'backbone.' if any(k.startswith('backbone.') for k in sd) else None
    name = f'checkpoint {filename!r}' + (f' (prefix {prefix!r})' if prefix else '')
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        sub = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
        if not sub:
            raise ValueError(
                f'no tensor in {filename!r} starts with prefix {prefix!r}; its keys start with '
                f'{key_prefixes(sd)}. Likely fix: set init_cfg prefix to one of those (e.g. '
                "prefix='backbone.' for an mmpretrain/mmdet checkpoint), prefix=None for a bare "
                'backbone or reference DS-Net file, or convert it with '
                'tools/model_converters/dsnet_to_mmpretrain.py.')
        sd = sub
    try:
        module.load_state_dict(sd, strict=True)
    except (RuntimeError, ValueError):   # ValueError: DSNet refused a DS-Net of another arch
        # Say what does not fit, in the names the module converted to (a failed load, so
        # the conversion runs again here only to explain it).
        check_state_dict_fits(module, checkpoint_filter_fn(sd, module), name,
                              partial(explain_mismatch, module,
                                      from_pretrained_arg=from_pretrained_arg))
        raise
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    n = len(module.state_dict())
    logger.info(f'{module.__class__.__name__}: loaded all {n} tensors from {name}')
    return n
