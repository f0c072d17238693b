"""DS-Net: Dual-stream Network for Visual Recognition (Mao et al., NeurIPS 2021, arXiv 2105.14734).

Read top to bottom: attention primitive, the two modules of the paper (Intra-scale Propagation,
Inter-scale Alignment), the DS-Block, the backbone and its presets.

The computation is the public reference's (a timm/DeiT port and PaddleClas agree to 0.1 M params),
operation for operation, so converted reference weights give the same outputs. What differs is
only how it runs: fused attention (``F.scaled_dot_product_attention``), any input size, and
parameter names that say what they are (``dsnet_checkpoint.checkpoint_filter_fn`` maps the
reference names whenever a state dict is loaded into ``DSNet``).
"""
import copy
import math
import numbers
from collections import OrderedDict
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.model.weight_init import PretrainedInit, initialize, trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm

from ...utils import DropPath
from .dsnet_checkpoint import arch_mismatch, checkpoint_filter_fn, load_checkpoint_strict

# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.,
                         fused: bool = True) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v over (B, heads, N, d) tensors.

    ``fused=True`` calls ``F.scaled_dot_product_attention``, which never materialises the
    (Nq x Nk) matrix on backends with flash / memory-efficient kernels: at 800 x 1333 the
    stage-1 co-attention is 66,800 x 1,050 per head. ``fused=False`` is the explicit reference
    computation, kept for checking and backends without fused kernels. Under ``torch.jit``
    tracing (mmengine's FLOP counter, TorchScript export) the explicit path is used, so the
    attention matmuls are counted instead of skipped as an unknown op.
    """
    if fused and not torch.jit.is_tracing():
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    attn = (q @ k.transpose(-2, -1)) * q.shape[-1]**-0.5
    attn = attn.softmax(dim=-1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p)
    return attn @ v


def split_heads(qkv: torch.Tensor, num_heads: int):
    """(B, N, 3C) laid out [q | k | v] -> three (B, heads, N, C / heads) tensors."""
    B, N, C3 = qkv.shape
    qkv = qkv.reshape(B, N, 3, num_heads, C3 // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return qkv.unbind(0)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    B, h, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, h * d)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def to_map(t: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], hw[0], hw[1])


def global_grid(hw: Tuple[int, int], ratio: int) -> Tuple[int, int]:
    """Size of the global stream: the reference's H // ratio, never below 1 x 1.

    Under tracing (``torch.onnx.export`` with the TorchScript exporter) the sizes are traced
    tensors: keep the arithmetic in the graph so an export with dynamic H, W stays dynamic.
    """
    return tuple(torch.clamp(s // ratio, min=1) if isinstance(s, torch.Tensor) else max(1, s // ratio)
                 for s in hw)


def needs_resize(src_hw, dst_hw) -> bool:
    """Whether a map of size ``src_hw`` must be resized to ``dst_hw``. Always True under tracing:
    a Python comparison of traced sizes would be frozen into the graph, and a bilinear resize
    to the same size (align_corners=False) is an exact identity anyway."""
    return torch.jit.is_tracing() or tuple(src_hw) != tuple(dst_hw)


_USE_FUSED_ATTN = True   # what attention modules built from now on use (``set_fused_attn``)


def set_fused_attn(enable: bool = True, module: Optional[nn.Module] = None):
    """The one switch between SDPA (True) and the explicit softmax(QK^T/sqrt d)V (False).

    With ``module``, every DS-Net attention inside it (a built backbone or neck) switches;
    without, the default of the attention modules built from now on (as timm's
    ``set_fused_attn``). Each attention module keeps its own ``fused_attn`` attribute.
    """
    if module is None:
        global _USE_FUSED_ATTN
        _USE_FUSED_ATTN = bool(enable)
        return
    for m in module.modules():
        if isinstance(m, _AttentionModule):
            m.fused_attn = bool(enable)


class _AttentionModule(nn.Module):
    """An attention with its own ``fused_attn`` switch (see ``set_fused_attn``)."""

    def __init__(self, attn_drop_rate: float):
        super().__init__()
        self.attn_drop_rate = attn_drop_rate
        self.fused_attn = _USE_FUSED_ATTN

    def _attend(self, q, k, v):
        p = self.attn_drop_rate if self.training else 0.
        return multi_head_attention(q, k, v, p, self.fused_attn)


# --------------------------------------------------------------------------------------------
# The two modules of the paper
# --------------------------------------------------------------------------------------------


class TokenPointwiseConv(nn.Conv2d):
    """A 1x1 conv computed as a linear on the token view of the map (same weights and result).

    The output is a map whose memory is token-major (channels-last strides), so its token view
    (``to_tokens``) is free and has unit stride in the channel dim. q/k/v split from it keep unit
    stride in the head dim; from an NCHW conv they had stride H*W there, which SDPA's fused CPU
    kernel rejects, falling back to the explicit math path (materialised Nq x Nk attention:
    ~3-5x slower at 800 x 1333). Being a module that is called (not only a holder of weights),
    it is what tracing FLOP counters attribute the work to.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 1)

    def forward(self, x):
        tokens = F.linear(to_tokens(x), self.weight.flatten(1), self.bias)
        return to_map(tokens, x.shape[-2:])


class StreamSplit(nn.Module):
    """The 1x1 projection into the two streams: returns ``(first half, second half)`` of its
    output channels (global, local), each computed as its own dense map (two convs on the halves
    of the weight).

    A module of its own, not an ``nn.Conv2d``: it returns a pair, which no user of a Conv2d
    expects. Its ``weight`` (C, C, 1, 1) and ``bias`` (C) are a 1x1 conv's, initialised as
    ``nn.Conv2d`` does, so the reference's ``conv1`` loads unchanged. One conv whose output were
    sliced would give channel-strided maps in channels-last, which every later op (BN,
    depthwise conv, resize) would copy. Called as a module, so FLOP counters see its work.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.weight = nn.Parameter(torch.empty(channels, channels, 1, 1))
        self.bias = nn.Parameter(torch.empty(channels))
        # nn.Conv2d's default initialisation (same draws, same order)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1 / math.sqrt(channels)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        half = self.channels // 2
        w, b = self.weight, self.bias
        return F.conv2d(x, w[:half], b[:half]), F.conv2d(x, w[half:], b[half:])

    def extra_repr(self):
        return f'{self.channels} -> ({self.channels // 2}, {self.channels // 2})'


class IntraScalePropagation(_AttentionModule):
    """Intra-scale Propagation: the two streams, each at its own scale.

    The input channels are split in half. The first half (global) is resized to
    ``H // (global_stride / stride)`` (the reference's floor of the map size) and goes through
    multi-head self-attention on those few tokens; the second half (local) stays at full
    resolution and goes through a depthwise 3x3 conv.

    Args:
        channels (int): width of each stream (half the block width).
        num_heads (int): heads of the global self-attention.
        stride (int): stride of the input map relative to the image.
        global_stride (int): stride of the global stream relative to the image (at most one
            global token per ``global_stride / stride`` map pixels; never finer than the map).
        attn_drop_rate (float): attention dropout (the reference hard-codes 0.1).
        norm_cfg (dict): norm of the local stream. Defaults to ``dict(type='BN')``.
    """

    def __init__(self, channels: int, num_heads: int, stride: int, global_stride: int,
                 attn_drop_rate: float = 0.1, norm_cfg: dict = dict(type='BN')):
        super().__init__(attn_drop_rate)
        self.num_heads = num_heads
        self.stride = stride
        self.global_stride = global_stride
        self.local_norm = build_norm_layer(norm_cfg, channels)[1]
        self.local_conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.global_norm = nn.LayerNorm(channels)
        # q, k, v straight from the normed tokens; the reference has no output projection here.
        self.global_qkv = nn.Linear(channels, 3 * channels)

    def forward(self, local: torch.Tensor, glob: torch.Tensor):
        """local, glob: (B, C, H, W) -> local (B, C, H, W), global tokens (B, Hg*Wg, C), (Hg, Wg)."""
        local = local + self.local_conv(self.local_norm(local))
        grid = global_grid(local.shape[-2:], max(1, self.global_stride // self.stride))
        if needs_resize(glob.shape[-2:], grid):
            glob = F.interpolate(glob, size=grid, mode='bilinear', align_corners=False)
        tokens = to_tokens(glob)
        q, k, v = split_heads(self.global_qkv(self.global_norm(tokens)), self.num_heads)
        tokens = tokens + merge_heads(self._attend(q, k, v))
        return local, tokens, grid


class InterScaleAlignment(_AttentionModule):
    """Inter-scale Alignment: co-attention between the streams, both directions.

    Local queries attend to global keys/values and global queries attend to local keys/values,
    with separate q/k/v projections per stream and a linear fusion per direction.

    Args:
        channels (int): width of each stream.
        num_heads (int): attention heads (head dim = channels / num_heads).
        attn_drop_rate (float): attention dropout (the reference hard-codes 0.1).
        norm_cfg (dict): norm of the local stream. Defaults to ``dict(type='BN')``.
    """

    def __init__(self, channels: int, num_heads: int, attn_drop_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN')):
        super().__init__(attn_drop_rate)
        self.num_heads = num_heads
        self.local_norm = build_norm_layer(norm_cfg, channels)[1]
        self.local_qkv = TokenPointwiseConv(channels, 3 * channels)
        self.global_norm = nn.LayerNorm(channels)
        self.global_qkv = nn.Linear(channels, 3 * channels)
        self.local_proj = nn.Linear(channels, channels)    # global -> local fusion
        self.global_proj = nn.Linear(channels, channels)   # local -> global fusion

    def forward(self, local: torch.Tensor, tokens: torch.Tensor):
        """local (B, C, H, W), tokens (B, Ng, C) -> the same shapes, each informed by the other."""
        hw = local.shape[-2:]
        # token-major q/k/v: unit stride in the head dim for SDPA (see TokenPointwiseConv)
        ql, kl, vl = split_heads(to_tokens(self.local_qkv(self.local_norm(local))), self.num_heads)
        qg, kg, vg = split_heads(self.global_qkv(self.global_norm(tokens)), self.num_heads)
        local_out = self.local_proj(merge_heads(self._attend(ql, kg, vg)))
        global_out = self.global_proj(merge_heads(self._attend(qg, kl, vl)))
        return local + to_map(local_out, hw), tokens + global_out


class DualStreamMixer(nn.Module):
    """The token mixer of a DS-Block: 1x1 conv, split into streams, Intra-scale Propagation,
    Inter-scale Alignment, global stream back to full resolution, concat [local, global], 1x1 conv.

    Shared by the backbone's ``DSBlock`` and the ``DSFPN`` neck. Arguments as ``DSBlock``'s.
    """

    def __init__(self, channels: int, num_heads: int, stride: int, global_stride: int,
                 attn_drop_rate: float = 0.1, norm_cfg: dict = dict(type='BN')):
        super().__init__()
        assert channels % 2 == 0, f'a dual-stream mixer needs an even width, got {channels}'
        half = channels // 2
        assert half % num_heads == 0, f'{half} stream channels do not split into {num_heads} heads'
        self.proj_in = StreamSplit(channels)   # -> (global half, local half)
        self.intra = IntraScalePropagation(half, num_heads, stride, global_stride, attn_drop_rate,
                                           norm_cfg)
        self.inter = InterScaleAlignment(half, num_heads, attn_drop_rate, norm_cfg)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hw = x.shape[-2:]
        glob, local = self.proj_in(x)   # first half global, second local, each a dense map
        local, tokens, grid = self.intra(local, glob)
        local, tokens = self.inter(local, tokens)
        glob = to_map(tokens, grid)
        if needs_resize(grid, hw):
            glob = F.interpolate(glob, size=hw, mode='bilinear', align_corners=False)
        return self.proj_out(torch.cat([local, glob], dim=1))


class ConvFFN(nn.Module):
    """1x1 conv -> GELU -> 1x1 conv (the reference's ``CMlp``)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class DSBlock(nn.Module):
    """DS-Block: conditional position encoding, dual-stream mixer, ConvFFN, each residual.

    Args:
        channels (int): block width C (C/2 local, C/2 global).
        num_heads (int): attention heads of each stream.
        mlp_ratio (float): ConvFFN hidden width / C.
        stride (int): stride of the block's map relative to the image.
        global_stride (int): stride of the global stream relative to the image.
        drop_path (float): stochastic depth rate of this block.
        attn_drop_rate (float): attention dropout.
        with_cp (bool): non-reentrant activation checkpointing of the whole block.
        norm_cfg (dict): every norm of the block on maps (the token LayerNorms stay LayerNorms).
            Defaults to ``dict(type='BN')``, the reference's.
    """

    def __init__(self, channels: int, num_heads: int, mlp_ratio: float = 4., stride: int = 16,
                 global_stride: int = 32, drop_path: float = 0., attn_drop_rate: float = 0.1,
                 with_cp: bool = False, norm_cfg: dict = dict(type='BN')):
        super().__init__()
        self.with_cp = with_cp
        self.pos_embed = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm1 = build_norm_layer(norm_cfg, channels)[1]
        self.mixer = DualStreamMixer(channels, num_heads, stride, global_stride, attn_drop_rate,
                                     norm_cfg)
        self.norm2 = build_norm_layer(norm_cfg, channels)[1]
        self.ffn = ConvFFN(channels, int(channels * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def _forward(self, x):
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.ffn(self.norm2(x)))

    def forward(self, x):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class PatchEmbed(nn.Module):
    """Non-overlapping strided conv; pads bottom/right so any size gives ceil(H / stride)."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.proj = nn.Conv2d(in_channels, channels, stride, stride=stride)

    def forward(self, x):
        H, W = x.shape[-2:]
        # ceil(H / s) * s - H with a floor division, not the modulo -H % s: under
        # torch.compile(dynamic=True) a modulo of a symbolic size becomes sympy's PythonMod,
        # which AOT autograd's float-scalar pass (the interpolate scales downstream) cannot
        # translate ("TensorReferenceAnalysis has no attribute python_mod", torch 2.13).
        pad_h = (H + self.stride - 1) // self.stride * self.stride - H
        pad_w = (W + self.stride - 1) // self.stride * self.stride - W
        if torch.jit.is_tracing() or pad_h or pad_w:   # traced: keep the (maybe zero) pad dynamic
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.proj(x)


# --------------------------------------------------------------------------------------------
# Argument checks shared by the backbone and the DSFPN neck
# --------------------------------------------------------------------------------------------

_NORM_EXAMPLES = "dict(type='BN'), dict(type='SyncBN') or dict(type='GN', num_groups=32)"


def check_rate(value, name: str, default: float):
    """A dropout-like probability: a number in [0, 1) (1 would divide by zero in DropPath)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f'{name} must be a number in [0, 1) (0 turns it off; the default is '
                         f'{default}), got {value!r}')


def check_norm_cfg(norm_cfg, widths: Sequence[int], name: str = 'norm_cfg'):
    """A norm config that builds a norm over the channels of maps of every width in ``widths``;
    mmcv would fail later with a bare assertion (GN without ``num_groups``) or a registry error
    that names neither the argument nor a fix."""
    widths = sorted(set(int(w) for w in widths))
    if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
        raise TypeError(f'{name} must be a dict with a type, e.g. {_NORM_EXAMPLES}; '
                        f'got {norm_cfg!r}')
    norm_type = norm_cfg['type']
    if norm_type in ('GN', nn.GroupNorm):
        groups = norm_cfg.get('num_groups')
        if groups is None:
            raise ValueError(f"{name}={norm_cfg!r}: GroupNorm needs num_groups, which must "
                             f'divide every width it normalises here ({widths}), e.g. '
                             "dict(type='GN', num_groups=32)")
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1 \
                or any(w % groups for w in widths):
            raise ValueError(f'{name}={norm_cfg!r}: num_groups must be a positive integer that '
                             f'divides every width it normalises here ({widths}), e.g. '
                             "dict(type='GN', num_groups=32)")
    if norm_type in ('LN', nn.LayerNorm):
        raise ValueError(f"{name}={norm_cfg!r}: 'LN' (nn.LayerNorm) normalises the last dim of a "
                         f'(B, C, H, W) map, not its channels; use {_NORM_EXAMPLES}')
    try:
        build_norm_layer(norm_cfg, widths[0])
    except KeyError as e:   # mmcv's message names None, not the type it could not find
        raise ValueError(f'{name}={norm_cfg!r}: no norm layer of type {norm_type!r} is '
                         f'registered; use {_NORM_EXAMPLES}') from e
    except (TypeError, ValueError) as e:
        raise ValueError(f'{name}={norm_cfg!r} does not build a norm layer ({e}); use '
                         f'{_NORM_EXAMPLES}') from e


def check_init_cfg(init_cfg, owner: str, prefix: str = 'backbone.'):
    """mmengine reads ``init_cfg['checkpoint']`` only when the weights are initialised (a bare
    ``KeyError: 'checkpoint'``); say at build time that a Pretrained entry needs one."""
    cfgs = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg] if init_cfg else []
    for cfg in cfgs:
        if not isinstance(cfg, dict) or 'type' not in cfg:
            raise TypeError(f'{owner} init_cfg entries must be dicts with a type, e.g. '
                            "dict(type='Pretrained', checkpoint=PATH_OR_URL); got {cfg!r}")
        if cfg['type'] in ('Pretrained', PretrainedInit) and not cfg.get('checkpoint'):
            raise ValueError(f'{owner} init_cfg {cfg!r} has no checkpoint: give '
                             f"dict(type='Pretrained', checkpoint=PATH_OR_URL, prefix={prefix!r}) "
                             f'(the prefix selects the {prefix[:-1]} of a whole model\'s '
                             'checkpoint), or init_cfg=None to start from random weights')


# --------------------------------------------------------------------------------------------
# The backbone
# --------------------------------------------------------------------------------------------


class DSNet(BaseModule):
    """DS-Net backbone (Dual-stream Network, NeurIPS 2021) for classification, detection and
    segmentation.

    One class serves all three: an mmpretrain ImageNet checkpoint loads into a detector with
    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``. Loading checks
    coverage and fails loudly; it never starts from silently random weights.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``), or a
            dict with ``channels``, ``depths``, ``num_heads`` (4 entries each), optionally
            ``mlp_ratio``. Defaults to ``'small'``.
        in_channels (int): input image channels. Defaults to 3.
        global_strides (Sequence[int] | int): per stage, the stride of the global stream
            relative to the image (a multiple of the stage's stride 4, 8, 16, 32); an int for all
            stages. As ``DSFPN``'s ``global_strides``. The reference uses (32, 32, 32, 64);
            32 keeps 1/32 everywhere, as the paper says. Weights do not depend on it.
        out_indices (Sequence[int] | int): distinct stages (0-3) whose maps are returned, at
            strides 4, 8, 16, 32. ``-1`` means the last. The maps always come in stage order
            (the indices are sorted). Defaults to ``(0, 1, 2, 3)``.
        final_norm (bool): apply the classifier's BatchNorm (``norm``) to the stage-4 output.
            Keep it True to reuse ImageNet weights unchanged. Defaults to True.
        drop_path_rate (float): stochastic depth of the deepest block. Defaults to 0.1.
        drop_path_schedule (str): ``'linear'`` over all blocks (standard), or ``'per_stage'``,
            the reference's schedule that restarts in each stage. Defaults to ``'linear'``.
        attn_drop_rate (float): attention dropout; the reference hard-codes 0.1.
        norm_cfg (dict): the norms on maps, in every DS-Block and the final ``norm``
            (``dict(type='SyncBN')`` for multi-GPU detection). Defaults to ``dict(type='BN')``,
            the reference's BatchNorm.
        frozen_stages (int): -1 freezes nothing, 0 the first patch embedding, i >= 1 also the
            blocks of stages 1..i and the patch embedding of stage i+1 (the downsampling after a
            frozen stage is frozen with it, as in mmdet's Swin); 4 also freezes ``norm``. Frozen
            parts stay in eval mode. Defaults to -1.
        norm_eval (bool): keep every BatchNorm in eval mode while training (frozen statistics).
            Defaults to False.
        with_cp (bool): activation checkpointing per block (non-reentrant, DDP-safe).
        fused_attn (bool, optional): use ``F.scaled_dot_product_attention``; False runs the
            explicit softmax(QK^T)V (for checking and FLOP counting). None (default) takes the
            process default of ``set_fused_attn`` (True unless changed).
        channels_last (bool): run internally in channels-last memory (see ``forward``); layout
            only, no effect on weights or results. Defaults to True.
        pretrained (str, optional): mmseg-style path (``EncoderDecoder(pretrained=...)`` sets
            it); same as ``init_cfg`` Pretrained with ``prefix='auto'``.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained', checkpoint=PATH_OR_URL,
            prefix='backbone.')``, layer initialisers (``dict(type='TruncNormal', layer='Linear',
            std=.02)``), or a list of them (mmengine applies ``Pretrained`` last). ``prefix``
            selects and strips the keys under it (None: the file is a bare backbone or a
            reference DS-Net / PaddleClas checkpoint, converted on the fly; ``'auto'``:
            ``'backbone.'`` if the file has such keys, else None). An ``http(s)://`` checkpoint
            is downloaded once into ``$TORCH_HOME/hub/checkpoints``.
    """
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'], {
            'channels': [64, 128, 320, 512],
            'depths': [2, 2, 4, 1],
            'num_heads': [1, 2, 5, 8],
            'mlp_ratio': 4.,
        }),
        **dict.fromkeys(['s', 'small'], {
            'channels': [64, 128, 320, 512],
            'depths': [3, 4, 8, 3],
            'num_heads': [1, 2, 5, 8],
            'mlp_ratio': 4.,
        }),
        **dict.fromkeys(['b', 'base'], {
            'channels': [64, 128, 320, 512],
            'depths': [3, 4, 28, 3],
            'num_heads': [1, 2, 5, 8],
            'mlp_ratio': 4.,
        }),
    }
    num_stages = 4
    strides = (4, 8, 16, 32)

    def __init__(self,
                 arch='small',
                 in_channels: int = 3,
                 global_strides: Union[int, Sequence[int]] = (32, 32, 32, 64),
                 out_indices=(0, 1, 2, 3),
                 final_norm: bool = True,
                 drop_path_rate: float = 0.1,
                 drop_path_schedule: str = 'linear',
                 attn_drop_rate: float = 0.1,
                 norm_cfg: dict = dict(type='BN'),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 fused_attn: Optional[bool] = None,
                 channels_last: bool = True,
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None):
        if pretrained is not None:
            assert init_cfg is None, 'give either `pretrained` or `init_cfg`, not both'
            # mmseg's EncoderDecoder(pretrained=...) lands here: take a bare backbone file or
            # the backbone of a classifier checkpoint, whichever the file is.
            init_cfg = dict(type='Pretrained', checkpoint=pretrained, prefix='auto')
        check_init_cfg(init_cfg, 'DSNet')
        super().__init__(init_cfg=init_cfg)
        # errors about these weights must point at model.pretrained, not at init_cfg
        self._weights_from_pretrained_arg = pretrained is not None

        self.arch_settings = self._parse_arch(arch)
        channels = self.arch_settings['channels']
        depths = self.arch_settings['depths']
        num_heads = self.arch_settings['num_heads']
        mlp_ratio = self.arch_settings.get('mlp_ratio', 4.)
        self.channels = list(channels)

        self.global_strides = self._parse_global_strides(global_strides)
        self.out_indices = self._parse_out_indices(out_indices)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.final_norm = final_norm
        if drop_path_schedule not in ('linear', 'per_stage'):
            raise ValueError(f"drop_path_schedule must be 'linear' or 'per_stage', got {drop_path_schedule!r}")
        check_rate(drop_path_rate, 'drop_path_rate', 0.1)
        check_rate(attn_drop_rate, 'attn_drop_rate', 0.1)
        # every norm on maps: a block's width and its streams' half width
        check_norm_cfg(norm_cfg, [*channels, *(c // 2 for c in channels)])

        total = sum(depths)
        rates = torch.linspace(0, drop_path_rate, total).tolist()
        self.patch_embeds = nn.ModuleList()
        self.stages = nn.ModuleList()
        start = 0
        for i in range(self.num_stages):
            self.patch_embeds.append(
                PatchEmbed(in_channels if i == 0 else channels[i - 1], channels[i], 4 if i == 0 else 2))
            # 'per_stage' reproduces the reference: every stage restarts at rates[0].
            first = start if drop_path_schedule == 'linear' else 0
            self.stages.append(nn.Sequential(*[
                DSBlock(channels[i], num_heads[i], mlp_ratio, stride=self.strides[i],
                        global_stride=self.global_strides[i], drop_path=rates[first + j],
                        attn_drop_rate=attn_drop_rate, with_cp=with_cp, norm_cfg=norm_cfg)
                for j in range(depths[i])
            ]))
            start += depths[i]
        self.norm = build_norm_layer(norm_cfg, channels[-1])[1]
        self.channels_last = channels_last
        if fused_attn is not None:
            set_fused_attn(fused_attn, self)
        self._freeze_stages()

    # -------------------------------------------------------------------- argument checking
    def _parse_arch(self, arch):
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise ValueError(f'unknown DSNet arch {arch!r}; choose one of '
                                 f'{sorted(set(self.arch_zoo))} or give a dict with '
                                 "'channels', 'depths' and 'num_heads'")
            return copy.deepcopy(self.arch_zoo[key])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        required = {'channels', 'depths', 'num_heads'}
        missing = required - set(arch)
        if missing:
            raise ValueError(f'custom DSNet arch is missing {sorted(missing)}; it needs '
                             f"'channels', 'depths' and 'num_heads' (4 values each)")
        for key in required:
            if len(arch[key]) != self.num_stages:
                raise ValueError(f'arch[{key!r}] must have {self.num_stages} values, got {arch[key]}')
        for key in ('channels', 'depths', 'num_heads'):
            if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1
                   for v in arch[key]):
                raise ValueError(f'arch[{key!r}] must be 4 positive integers, got {arch[key]}')
        mlp_ratio = arch.get('mlp_ratio', 4.)
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, numbers.Real) or \
                int(min(arch['channels']) * mlp_ratio) < 1:
            raise ValueError(f"arch['mlp_ratio'] must be a positive number (the ConvFFN's hidden "
                             f'width / stage width, at least 1 channel: DS-Net uses 4.), got '
                             f'{mlp_ratio!r}')
        for c, h in zip(arch['channels'], arch['num_heads']):
            if c % 2 or (c // 2) % h:
                raise ValueError(f'stage width {c} must be even and its half divisible by its '
                                 f'{h} heads (arch {arch})')
        return copy.deepcopy(dict(arch))

    def _parse_global_strides(self, global_strides):
        """One stride per stage, each a multiple of the stage's own (an int: the same for all)."""
        if isinstance(global_strides, numbers.Integral) and not isinstance(global_strides, bool):
            global_strides = (global_strides, ) * self.num_stages
        global_strides = tuple(global_strides)
        if len(global_strides) != self.num_stages or any(
                int(g) < s or int(g) % s for g, s in zip(global_strides, self.strides)):
            raise ValueError(f'global_strides must be 4 integers, each a multiple of its stage\'s '
                             f'stride {self.strides}, e.g. (32, 32, 32, 64) (the reference) or '
                             f'32 (1/32 in every stage); got {global_strides}')
        return tuple(int(g) for g in global_strides)

    def _parse_out_indices(self, out_indices):
        """Distinct stage indices in range, returned sorted: ``forward`` yields the maps in
        stage order (stride 4 first) whatever order they were given in, as mmdet's ResNet."""
        allowed = (f'DSNet has {self.num_stages} stages: use distinct integers in 0..3 (strides '
                   '4, 8, 16, 32) or -1 for the last, e.g. out_indices=(0, 1, 2, 3)')
        if isinstance(out_indices, int) and not isinstance(out_indices, bool):
            out_indices = [out_indices]
        if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence):
            raise ValueError(f'out_indices must be an int or a sequence of ints, got '
                             f'{out_indices!r} ({type(out_indices).__name__}); {allowed}')
        if len(out_indices) == 0:
            raise ValueError(f'out_indices is empty: the backbone would return nothing; {allowed}')
        parsed = []
        for i in out_indices:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise ValueError(f'out_indices entry {i!r} ({type(i).__name__}) is not an '
                                 f'integer; {allowed}')
            if not -self.num_stages <= i < self.num_stages:
                raise ValueError(f'out_indices entry {i} is out of range: {allowed}')
            parsed.append(int(i) % self.num_stages)
        repeated = sorted({i for i in parsed if parsed.count(i) > 1})
        if repeated:
            raise ValueError(f'out_indices {tuple(out_indices)} names stage(s) {repeated} more '
                             f'than once (-1 is stage 3); {allowed}')
        return tuple(sorted(parsed))

    # -------------------------------------------------------------------- forward
    def _check_batch_norm_fits(self, x):
        """BatchNorm in train mode needs more than one value per channel: a batch of one whose
        stage map is 1 x 1 would die deep inside with BatchNorm's raw error. Say which stage and
        what works instead."""
        B, _, H, W = x.shape
        if B * -(-H // self.strides[-1]) * -(-W // self.strides[-1]) > 1:
            return   # the coarsest map has more than one value per channel: all do
        for i, stride in enumerate(self.strides):
            h, w = -(-H // stride), -(-W // stride)
            if B * h * w > 1:
                continue
            mods = list(self.stages[i].modules())
            if i == self.num_stages - 1 and self.final_norm and i in self.out_indices:
                mods.append(self.norm)
            if any(isinstance(m, _BatchNorm) and m.training for m in mods):
                raise ValueError(
                    f'DSNet stage {i + 1} (stride {stride}) gets a 1 x 1 map from a {H} x {W} '
                    f'input with batch {B}: its BatchNorm layers in train mode need more than one '
                    f'value per channel. Train with batch >= 2, or inputs larger than {stride} px '
                    f'on at least one side (e.g. {2 * stride} x {2 * stride}), or set '
                    'norm_eval=True (frozen BatchNorm statistics).')

    def forward(self, x):
        if self.training and not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self._check_batch_norm_fits(x)
        outs = []
        if self.channels_last:
            # Run internally in channels-last (NHWC): the token view of a map and the map view of
            # tokens are then free, and oneDNN convolutions (1x1 and depthwise) skip their
            # NCHW <-> blocked reorders. Outputs are handed back as ordinary contiguous NCHW.
            x = x.contiguous(memory_format=torch.channels_last)
        for i in range(self.num_stages):
            x = self.stages[i](self.patch_embeds[i](x))
            if i in self.out_indices:
                out = self.norm(x) if i == self.num_stages - 1 and self.final_norm else x
                outs.append(out.contiguous() if self.channels_last else out)
        return tuple(outs)

    # -------------------------------------------------------------------- freezing
    def _frozen_modules(self):
        mods = []
        if self.frozen_stages >= 0:
            mods.append(self.patch_embeds[0])
        for i in range(1, self.frozen_stages + 1):
            mods.append(self.stages[i - 1])
            if i < self.num_stages:
                mods.append(self.patch_embeds[i])
        if self.frozen_stages >= self.num_stages:
            mods.append(self.norm)
        return mods

    def _freeze_stages(self):
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # -------------------------------------------------------------------- layer-wise lr decay
    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """The depth of a parameter for layer-wise learning-rate decay, numbered as mmpretrain's
        Swin Transformer numbers its own: one layer per DS-Block.

        * ``patch_embeds.0`` (the stem): 0.
        * block ``j`` of stage ``i``: ``sum(depths[:i]) + j + 1`` (1 to ``sum(depths)``).
        * ``patch_embeds.i`` (i >= 1, the downsampling between stages ``i - 1`` and ``i``): the
          last block of stage ``i - 1``, as Swin's patch merging at the end of a stage. It is
          also frozen with that stage (``frozen_stages``).
        * ``norm`` (after the last block) and any parameter outside the backbone (neck, heads):
          ``sum(depths) + 1 = max_layer_id - 1``, the full learning rate.

        mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` scales the learning rate of
        a parameter by ``layer_decay_rate ** (max_layer_id - layer_id - 1)``.

        Args:
            param_name (str): name of the parameter, e.g. ``'backbone.stages.2.3.ffn.fc1.weight'``.
            prefix (str): prefix of the backbone's parameters in ``param_name``, e.g.
                ``'backbone.'`` for a detector's. A name without it is outside the backbone.
                Defaults to ``''``.

        Returns:
            Tuple[int, int]: ``(layer_id, max_layer_id)``, with ``0 <= layer_id < max_layer_id``
            and ``max_layer_id = sum(depths) + 2``.
        """
        depths = self.arch_settings['depths']
        max_layer_id = sum(depths) + 2
        if not param_name.startswith(prefix):
            return max_layer_id - 1, max_layer_id    # neck, heads: after the backbone
        parts = param_name[len(prefix):].split('.')
        if parts[0] == 'patch_embeds':
            stage = int(parts[1])
            return sum(depths[:stage]), max_layer_id   # the stem: 0
        if parts[0] == 'stages':
            stage, block = int(parts[1]), int(parts[2])
            return sum(depths[:stage]) + block + 1, max_layer_id
        return max_layer_id - 1, max_layer_id   # the final norm

    # -------------------------------------------------------------------- weights
    def init_weights(self):
        """DS-Net's own initialisation, then ``init_cfg`` as mmengine defines it: a dict or a
        list of dicts, layer initialisers applied first and ``Pretrained`` last (here strict:
        every tensor or an error). ``checkpoint`` may be a path or a URL (downloaded once into
        torch's hub cache)."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, (list, tuple)) else \
            [self.init_cfg] if self.init_cfg else []
        pretrained = [c for c in cfgs if c.get('type') in ('Pretrained', PretrainedInit)]
        others = [c for c in cfgs if c.get('type') not in ('Pretrained', PretrainedInit)]
        if len(pretrained) > 1:
            raise ValueError(f'DSNet init_cfg holds {len(pretrained)} Pretrained entries; give one')
        if not pretrained:
            MMLogger.get_current_instance().warning(
                'DSNet: no pre-trained weights (no Pretrained in init_cfg), training starts from '
                'scratch')
            self._init_reference_weights()
        if others:
            initialize(self, others)
        if pretrained:
            cfg = pretrained[0]
            load_checkpoint_strict(self, cfg['checkpoint'], prefix=cfg.get('prefix'),
                                   map_location=cfg.get('map_location', 'cpu'),
                                   from_pretrained_arg=self._weights_from_pretrained_arg)
        self._is_init = True

    def _init_reference_weights(self):
        """The reference's initialisation: Linear trunc_normal std 0.02 with zero bias, LayerNorm
        1 / 0; convolutions and BatchNorm keep PyTorch's defaults."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """Every way of loading weights into DSNet (``load_state_dict``, mmengine's
        ``load_checkpoint``, ``init_cfg`` Pretrained) takes a reference (DeiT-port / PaddleClas)
        backbone dict too: it is renamed here, once, before the tensors are copied."""
        own = [k for k in state_dict if k.startswith(prefix)]
        sub = OrderedDict((k[len(prefix):], state_dict[k]) for k in own)
        converted = checkpoint_filter_fn(sub, self)
        # mmengine's load_checkpoint (runner load_from, init_detector, mmpretrain's get_model)
        # loads with strict=False and only warns: a DS-Net of another depth or width would run
        # on half-random weights.
        wrong_arch = arch_mismatch(converted, self)
        if wrong_arch:
            where = f" (the keys under {prefix!r})" if prefix else ''
            raise ValueError(f'cannot load these DS-Net weights{where}: {wrong_arch}')
        if converted is not sub:
            for k in own:
                del state_dict[k]
            state_dict.update((prefix + k, v) for k, v in converted.items())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)
