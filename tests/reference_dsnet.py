"""An independent, literal transcription of the public reference DS-Net (DeiT-port layout).

Written from the paper (Mao et al., "Dual-stream Network for Visual Recognition", NeurIPS 2021,
arXiv 2105.14734) and the public reference code (the PyTorch/timm port built on DeiT; PaddleClas's
DSNet for the ``.pdparams`` names) line by line, with the reference's parameter names and explicit
attention. Used by the tests as (a) the oracle that ``DSNet`` must equal and (b) the source of
checkpoints in the foreign layouts the converters read.
"""
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = {
    'tiny': [2, 2, 4, 1],
    'small': [3, 4, 8, 3],
    'base': [3, 4, 28, 3],
}
CHANNELS = [64, 128, 320, 512]
HEADS = [1, 2, 5, 8]
GLOBAL_DS = [8, 4, 2, 2]


def _attention(q, k, v):
    attn = (q @ k.transpose(-2, -1)) * (q.shape[-1]**-0.5)
    return attn.softmax(dim=-1) @ v


def _heads(qkv, num_heads):
    B, N, C3 = qkv.shape
    C = C3 // 3
    qkv = qkv.reshape(B, N, 3, num_heads, C // num_heads).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def _merge(x):
    B, h, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, h * d)


class CMlp(nn.Module):

    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, 4 * dim, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(4 * dim, dim, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class MixBlock(nn.Module):

    def __init__(self, dim, num_heads, downsample):
        super().__init__()
        ch = dim // 2
        self.num_heads = num_heads
        self.downsample = downsample
        self.dim_sa = ch
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm_conv1 = nn.BatchNorm2d(ch)
        self.norm_sa1 = nn.LayerNorm(ch)
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, groups=ch)
        self.channel_up = nn.Linear(ch, 3 * ch)
        self.cross_channel_up_conv = nn.Conv2d(ch, 3 * ch, 1)
        self.cross_channel_up_sa = nn.Linear(ch, 3 * ch)
        self.fuse_channel_conv = nn.Linear(ch, ch)
        self.fuse_channel_sa = nn.Linear(ch, ch)
        self.norm_conv2 = nn.BatchNorm2d(ch)
        self.norm_sa2 = nn.LayerNorm(ch)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = CMlp(dim)

    def forward(self, x):
        x = x + self.pos_embed(x)
        B, _, H, W = x.shape
        residual = x
        x = self.conv1(self.norm1(x))
        qkv = x[:, :self.dim_sa]
        conv = x[:, self.dim_sa:]
        conv = conv + self.conv(self.norm_conv1(conv))

        sa = F.interpolate(qkv, size=(H // self.downsample, W // self.downsample), mode='bilinear')
        Hd, Wd = sa.shape[2:]
        sa = sa.flatten(2).transpose(1, 2)
        sa = sa + _merge(_attention(*_heads(self.channel_up(self.norm_sa1(sa)), self.num_heads)))

        conv_qkv = self.cross_channel_up_conv(self.norm_conv2(conv)).flatten(2).transpose(1, 2)
        sa_qkv = self.cross_channel_up_sa(self.norm_sa2(sa))
        ql, kl, vl = _heads(conv_qkv, self.num_heads)
        qg, kg, vg = _heads(sa_qkv, self.num_heads)
        conv_out = self.fuse_channel_conv(_merge(_attention(ql, kg, vg)))
        conv = conv + conv_out.transpose(1, 2).reshape(B, -1, H, W)
        sa = sa + self.fuse_channel_sa(_merge(_attention(qg, kl, vl)))

        sa = sa.transpose(1, 2).reshape(B, -1, Hd, Wd)
        sa = F.interpolate(sa, size=(H, W), mode='bilinear')
        x = residual + self.conv2(torch.cat([conv, sa], dim=1))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):

    def __init__(self, cin, cout, k):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, k, stride=k)

    def forward(self, x):
        return self.proj(x)


class ReferenceDSNet(nn.Module):
    """Reference classifier; input must be a multiple of 32 (as the reference asserts 224)."""

    def __init__(self, arch='tiny', num_classes=1000):
        super().__init__()
        depths = ARCHS[arch]
        cin = 3
        for s in range(4):
            setattr(self, f'patch_embed{s + 1}', PatchEmbed(cin, CHANNELS[s], 4 if s == 0 else 2))
            cin = CHANNELS[s]
        for s in range(4):
            setattr(self, f'blocks{s + 1}', nn.ModuleList(
                [MixBlock(CHANNELS[s], HEADS[s], GLOBAL_DS[s]) for _ in range(depths[s])]))
        self.norm = nn.BatchNorm2d(CHANNELS[-1])
        self.head = nn.Linear(CHANNELS[-1], num_classes)

    def forward_features(self, x):
        feats = []
        for s in range(4):
            x = getattr(self, f'patch_embed{s + 1}')(x)
            for blk in getattr(self, f'blocks{s + 1}'):
                x = blk(x)
            feats.append(x)
        feats[-1] = self.norm(feats[-1])
        return feats

    def forward(self, x):
        x = self.forward_features(x)[-1]
        return self.head(x.flatten(2).mean(-1))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere, BN statistics included, so equality tests mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                t.fill_(7)
            elif name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif name.endswith('running_mean') or name.endswith('bias'):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:   # norm weights
                t.copy_(1 + torch.randn(t.shape, generator=g) * 0.1)
            else:
                fan_in = t[0].numel()
                t.copy_(torch.randn(t.shape, generator=g) * (0.5 / fan_in**0.5))
    return model


def deit_checkpoint(model: ReferenceDSNet) -> dict:
    """The reference PyTorch layout: a DeiT-style dict with the weights under ``model``."""
    sd = model.state_dict()
    return {'model': sd, 'model_ema': sd, 'epoch': 299, 'args': None}


PADDLE_LINEARS = ('channel_up.weight', 'cross_channel_up_sa.weight', 'fuse_channel_conv.weight',
                  'fuse_channel_sa.weight', 'head.weight')


def paddle_state_dict(model: ReferenceDSNet) -> 'OrderedDict[str, np.ndarray]':
    """The PaddleClas layout: numpy arrays, BN ``_mean``/``_variance``, no step counter, Linear
    weights stored [in, out]."""
    out = OrderedDict()
    for k, v in model.state_dict().items():
        if k.endswith('num_batches_tracked'):
            continue
        k = k.replace('running_mean', '_mean').replace('running_var', '_variance')
        v = v.numpy()
        if k.endswith(PADDLE_LINEARS):
            v = v.T.copy()
        out[k] = v
    return out
