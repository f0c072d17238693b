"""DS-FPN: the Dual-stream Feature Pyramid Network.

The paper (Mao et al., NeurIPS 2021, Sec. 3.4) adds a "Dual-stream FPN to further enhance
contextual information for downstream dense predictions" but never published its exact layout.
**This is dsnet_mm's design**, not a reproduction: mmdet's FPN (extended), plus one dual-stream
block after the top-down sum at every backbone level. The block is the backbone's own
``DualStreamMixer``: the local half through a depthwise 3x3 at full resolution, the global half
resized to 1/32 of the image (``global_strides``: 8, 4, 2, 1 times smaller than P2..P5) through
self-attention, co-attention both ways, concat + 1x1 conv, residual. Global context therefore
reaches every level at a cost linear in its size, while the local stream keeps small objects sharp.

Signature and outputs are mmdet's ``FPN``'s, so a config switches with ``type='DSFPN'`` alone.
"""
import numbers
from typing import List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.models.necks import FPN
from mmengine.model.weight_init import trunc_normal_

from ..backbones.dsnet import (DualStreamMixer, StreamSplit, check_init_cfg, check_norm_cfg,
                               check_rate, set_fused_attn)

STRIDES_OF_4 = (4, 8, 16, 32)   # a 4-level backbone pyramid (ResNet, Swin, PVT, DSNet)


class DualStreamContext(nn.Module):
    """``x + DualStreamMixer(norm(x))``: one dual-stream context block of the neck (a DS-Block's
    token mixer without its position encoding and FFN)."""

    def __init__(self, channels: int, num_heads: int, stride: int, global_stride: int,
                 norm_cfg: dict, attn_drop_rate: float = 0.):
        super().__init__()
        self.norm = build_norm_layer(norm_cfg, channels)[1]
        self.mixer = DualStreamMixer(channels, num_heads, stride, global_stride, attn_drop_rate,
                                     norm_cfg)

    def forward(self, x):
        return x + self.mixer(self.norm(x))


def _check_arguments(in_channels, out_channels, num_outs, start_level, end_level,
                     add_extra_convs, in_strides, global_strides, num_heads):
    """What mmdet's FPN asserts, and what the dual-stream blocks need, as errors that say what
    to change. Returns the stride and the global stream's stride of every input level."""
    if not isinstance(in_channels, (list, tuple)) or not in_channels:
        raise TypeError(f'in_channels must be a non-empty list of ints, got {in_channels!r}')
    num_ins = len(in_channels)
    if out_channels % 2 or (out_channels // 2) % num_heads:
        raise ValueError(f'out_channels={out_channels} must be even with its half divisible by '
                         f'num_heads={num_heads}: the dual-stream blocks split the channels '
                         'into a local and a global half')
    if in_strides is None:
        # Only a full 4-level pyramid says its strides (4, 8, 16, 32, as every mmdet
        # backbone's); 3 levels are (8, 16, 32) from out_indices=(1, 2, 3) or (4, 8, 16) from
        # (0, 1, 2), and a wrong guess runs the global stream at the wrong scale.
        if num_ins != 4:
            n = num_ins
            example = (f': in_strides={STRIDES_OF_4[-n:]} for a backbone with '
                       f'out_indices={tuple(range(4 - n, 4))}, {STRIDES_OF_4[:n]} for '
                       f'out_indices={tuple(range(n))}') if n < 4 else ''
            raise ValueError(
                f'DSFPN cannot tell the strides of {n} input levels (only 4 levels default '
                f'to strides {STRIDES_OF_4}): give in_strides, one stride per entry of '
                f'in_channels={list(in_channels)}{example}')
        in_strides = STRIDES_OF_4
    in_strides = [int(s) for s in in_strides]
    if len(in_strides) != num_ins or any(s < 1 for s in in_strides):
        raise ValueError(f'in_strides {tuple(in_strides)} must give one positive stride for '
                         f'each of the {num_ins} input levels')
    if isinstance(global_strides, numbers.Integral) and not isinstance(global_strides, bool):
        global_strides = [global_strides] * num_ins
    global_strides = [int(g) for g in global_strides]
    if len(global_strides) != num_ins or any(g < 1 for g in global_strides):
        raise ValueError(f'global_strides {tuple(global_strides)} must be one positive int, or '
                         f'one for each of the {num_ins} input levels')
    if not 0 <= start_level < num_ins:
        raise ValueError(f'start_level={start_level} must be in [0, {num_ins - 1}] '
                         f'({num_ins} input levels)')
    if end_level == -1 or end_level == num_ins - 1:
        if num_outs < num_ins - start_level:
            raise ValueError(f'num_outs={num_outs} is smaller than the {num_ins - start_level} '
                             f'backbone levels used (start_level={start_level})')
    elif not start_level <= end_level < num_ins or num_outs != end_level - start_level + 1:
        # as mmdet's FPN: no extra levels when end_level is not the last input
        raise ValueError(f'end_level={end_level} needs start_level <= end_level < '
                         f'{num_ins} and num_outs == end_level - start_level + 1 '
                         f'(got start_level={start_level}, num_outs={num_outs})')
    if not isinstance(add_extra_convs, (str, bool)):
        raise TypeError(f"add_extra_convs must be a bool or 'on_input' / 'on_lateral' / "
                        f"'on_output', got {add_extra_convs!r}")
    if isinstance(add_extra_convs, str) and \
            add_extra_convs not in ('on_input', 'on_lateral', 'on_output'):
        raise ValueError(f"add_extra_convs must be bool, 'on_input', 'on_lateral' or "
                         f"'on_output', got {add_extra_convs!r}")
    return in_strides, global_strides


class DSFPN(FPN):
    """Dual-stream FPN (see the module docstring): mmdet's ``FPN`` builds the lateral and output
    convs and the extra levels; DSFPN adds a ``DualStreamContext`` per backbone level and runs it
    in the top-down path.

    One class is registered in mmdet and mmseg. It is built on mmdet's ``FPN``, not on mmseg's:
    mmseg's has the same layers and forward but another signature (its deprecated
    ``extra_convs_on_inputs``), and a DSFPN config should read the same in both libraries. The
    registration into mmseg therefore needs mmdet installed, as every stack dsnet_mm sets up has.

    Args:
        in_channels (list[int]): channels of each backbone level.
        out_channels (int): channels of every output level (even; half local, half global).
        num_outs (int): number of outputs, extra levels included.
        start_level (int): first backbone level used. Defaults to 0.
        end_level (int): last backbone level used (-1: the last). Defaults to -1.
        add_extra_convs (bool | str): as mmdet's FPN: False (max-pool), True / 'on_input',
            'on_lateral' (the top level after its dual-stream block), 'on_output'.
        relu_before_extra_convs (bool): as mmdet's FPN.
        no_norm_on_lateral (bool): as mmdet's FPN.
        conv_cfg, norm_cfg, act_cfg (dict): of the lateral and output convs, as mmdet's FPN.
        upsample_cfg (dict): top-down interpolation. Defaults to ``dict(mode='nearest')``.
        in_strides (Sequence[int], optional): stride of each level of ``in_channels`` (one per
            input level); the global stream of a level is downsampled by
            ``global_stride / stride`` (at least 1). None (default) is (4, 8, 16, 32) for four
            inputs; with any other number of inputs the strides are ambiguous and must be
            given, e.g. (8, 16, 32) for a backbone with ``out_indices=(1, 2, 3)``.
        global_strides (Sequence[int] | int): per input level (or an int for all), the stride of
            the global stream relative to the image, as ``DSNet``'s ``global_strides``.
            Defaults to 32 (1/32 of the image at every level).
        num_heads (int): attention heads of each stream (head dim = out_channels / 2 / heads).
            Defaults to 4 (32-wide heads at 256 channels).
        context_norm_cfg (dict): the norms of the dual-stream blocks (before each block and on
            its local stream), as ``DSNet``'s ``norm_cfg`` (``norm_cfg`` is FPN's, of the convs).
            Defaults to BN.
        attn_drop_rate (float): attention dropout in the dual-stream blocks, as ``DSNet``'s.
            Defaults to 0.
        init_cfg: defaults to mmdet FPN's Xavier on convs (the dual-stream blocks' 1x1
            ``StreamSplit`` projections included); Linear layers get trunc-normal 0.02.
        fused_attn (bool, optional): as ``DSNet``'s: None takes the default of
            ``set_fused_attn``.
    """
    def __init__(self,
                 in_channels: List[int],
                 out_channels: int,
                 num_outs: int,
                 start_level: int = 0,
                 end_level: int = -1,
                 add_extra_convs: Union[bool, str] = False,
                 relu_before_extra_convs: bool = False,
                 no_norm_on_lateral: bool = False,
                 conv_cfg=None,
                 norm_cfg=None,
                 act_cfg=None,
                 upsample_cfg=dict(mode='nearest'),
                 in_strides: Optional[Sequence[int]] = None,
                 global_strides: Union[int, Sequence[int]] = 32,
                 num_heads: int = 4,
                 context_norm_cfg=dict(type='BN'),
                 attn_drop_rate: float = 0.,
                 init_cfg=dict(type='Xavier', layer=['Conv2d', StreamSplit.__name__],
                               distribution='uniform'),
                 fused_attn: Optional[bool] = None):
        in_strides, global_strides = _check_arguments(in_channels, out_channels, num_outs,
                                                      start_level, end_level, add_extra_convs,
                                                      in_strides, global_strides, num_heads)
        if norm_cfg is not None:   # FPN's, on the lateral and output convs
            check_norm_cfg(norm_cfg, [out_channels], 'norm_cfg')
        check_norm_cfg(context_norm_cfg, [out_channels, out_channels // 2], 'context_norm_cfg')
        check_rate(attn_drop_rate, 'attn_drop_rate', 0.)
        check_init_cfg(init_cfg, 'DSFPN', prefix='neck.')
        super().__init__(list(in_channels), out_channels, num_outs, start_level, end_level,
                         add_extra_convs, relu_before_extra_convs, no_norm_on_lateral, conv_cfg,
                         norm_cfg, act_cfg, upsample_cfg, init_cfg)
        self.in_strides = in_strides
        self.global_strides = global_strides
        self.context_blocks = nn.ModuleList(
            DualStreamContext(out_channels, num_heads, in_strides[i], global_strides[i],
                              context_norm_cfg, attn_drop_rate)
            for i in range(self.start_level, self.backbone_end_level))
        if fused_attn is not None:
            set_fused_attn(fused_attn, self)

    def init_weights(self):
        # Xavier (init_cfg) on the convs, trunc-normal 0.02 on the attention Linears, as the
        # backbone. Only on the first call and never over weights a Pretrained init_cfg loaded.
        first = not self._is_init
        pretrained = isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'
        super().init_weights()
        if first and not pretrained:
            for m in self.context_blocks.modules():
                if isinstance(m, nn.Linear):
                    trunc_normal_(m.weight, std=.02)
                    nn.init.zeros_(m.bias)

    def forward(self, inputs):
        """mmdet FPN's forward with each level's dual-stream block after its top-down sum (the
        top level's on its lateral), so every finer level receives context-enhanced maps."""
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'DSFPN got {len(inputs)} input levels, in_channels has '
                             f'{len(self.in_channels)}')
        widths = [x.shape[1] for x in inputs]
        if widths != self.in_channels:
            raise ValueError(f'DSFPN was built for input widths in_channels={self.in_channels} '
                             f'but received maps of widths {widths}: set the neck\'s '
                             'in_channels to the backbone\'s output channels (DSNet: '
                             '[64, 128, 320, 512] for out_indices=(0, 1, 2, 3))')
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        used = len(laterals)
        laterals[-1] = self.context_blocks[-1](laterals[-1])
        for i in range(used - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = self.context_blocks[i - 1](laterals[i - 1] + up)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(used)]

        # extra levels: unchanged from mmdet's FPN, which has no method of its own for them
        if self.num_outs > used and not self.add_extra_convs:
            for _ in range(self.num_outs - used):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif self.num_outs > used:
            source = {'on_input': inputs[self.backbone_end_level - 1], 'on_lateral': laterals[-1],
                      'on_output': outs[-1]}[self.add_extra_convs]
            outs.append(self.fpn_convs[used](source))
            for i in range(used + 1, self.num_outs):
                outs.append(self.fpn_convs[i](F.relu(outs[-1]) if self.relu_before_extra_convs
                                              else outs[-1]))
        return tuple(outs)
