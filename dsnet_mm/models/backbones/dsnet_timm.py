"""DS-Net as timm models: ``dsnet_tiny``, ``dsnet_small``, ``dsnet_base`` (``import dsnet_mm.timm``).

``DSNetTimm`` is ``DSNet`` itself (same modules, same parameter names) with the classifier of the
mmpretrain ImageNet configs (the final BatchNorm ``norm``, global average pooling, a Linear
``head``) and timm's model interface: ``forward_features`` / ``forward_head``,
``forward_intermediates`` (``features_only=True`` goes through it), ``reset_classifier``,
``group_matcher`` and ``set_grad_checkpointing``.

``pretrained=True`` loads PaddleClas's public ImageNet weights through timm's pretrained
mechanism, but the file is fetched by dsnet_mm's download cache (``dsnet_mm.utils.download``: the
Content-Length check, one cache entry per URL, clear errors) and read by its safe reader: the
``.pdparams`` files are pickles of numpy arrays, which timm's ``torch.load`` cannot read. The
weights reach timm as ``pretrained_cfg['state_dict']``; ``pretrained_filter_fn`` converts them
with ``checkpoint_filter_fn``. A ``pretrained_cfg_overlay`` ``url`` or ``file`` takes the same way.
"""
import numbers
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

try:
    import timm  # noqa: F401
except ImportError as e:   # timm is optional: only this module needs it
    raise ImportError('DS-Net in timm needs timm: pip install "dsnet_mm[timm]" (or pip install '
                      'timm)') from e
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SelectAdaptivePool2d, trunc_normal_
from timm.models._builder import build_model_with_cfg, resolve_pretrained_cfg
from timm.models._registry import generate_default_cfgs, register_model

from ...utils.checkpoint import extract_state_dict, name_examples, read_checkpoint
from ...utils.download import load_url
from .dsnet import DSNet
from .dsnet_checkpoint import arch_mismatch, checkpoint_filter_fn

__all__ = ['DSNetTimm', 'pretrained_filter_fn']

PADDLECLAS_URL = ('https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/'
                  'DSNet_{}_pretrained.pdparams')
_DSNET_ARGS_OWNED_HERE = ('out_indices', 'final_norm', 'pretrained', 'init_cfg', 'in_channels')


def _take_indices(indices, num_stages: int = 4, strides=DSNet.strides) -> List[int]:
    """timm's feature indices, checked: None (all stages), an int n (the last n), or distinct
    stage indices (negative from the end). -> absolute stage indices, in stage order."""
    allowed = (f'DS-Net has {num_stages} feature stages (reductions '
               f'{", ".join(map(str, strides))}): give distinct indices in 0..{num_stages - 1} '
               f'(or -{num_stages}..-1), e.g. out_indices=(0, 1, 2, 3), or an int n for the last n')
    if indices is None:
        return list(range(num_stages))
    if isinstance(indices, numbers.Integral) and not isinstance(indices, bool):
        if not 1 <= indices <= num_stages:
            raise ValueError(f'out_indices={indices}: an int means the last n stages, n in '
                             f'1..{num_stages}; {allowed}')
        return list(range(num_stages - int(indices), num_stages))
    if isinstance(indices, (str, bytes)) or not isinstance(indices, Sequence) or not indices:
        raise ValueError(f'out_indices={indices!r}: {allowed}')
    taken = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) \
                or not -num_stages <= i < num_stages:
            raise ValueError(f'out_indices={tuple(indices)}: {i!r} is out of range; {allowed}')
        taken.append(int(i) % num_stages)
    if len(set(taken)) != len(taken):
        raise ValueError(f'out_indices={tuple(indices)} names a stage twice; {allowed}')
    return sorted(taken)


class DSNetTimm(DSNet):
    """DS-Net classifier with timm's interface: ``DSNet`` (its stages and final BatchNorm
    ``norm``), global pooling and a Linear ``head`` over the 512 stage-4 channels.

    Built by ``timm.create_model('dsnet_small', ...)`` after ``import dsnet_mm.timm``. The
    parameter names are ``DSNet``'s plus ``head.weight`` / ``head.bias``, so a reference DS-Net
    or PaddleClas state dict loads into it directly (converted on the fly, as into ``DSNet``).

    Args:
        arch (str | dict): as ``DSNet``'s (``'tiny'``, ``'small'``, ``'base'`` or a dict).
        in_chans (int): input image channels. Defaults to 3.
        num_classes (int): classifier outputs; 0 leaves no classifier (``forward`` returns the
            pooled features). Defaults to 1000.
        global_pool (str): timm's pooling type (``'avg'``, ``'max'``, ``'avgmax'``, ``'catavgmax'``
            or ``''`` for none). Defaults to ``'avg'``, as the mmpretrain configs'
            ``GlobalAveragePooling``.
        drop_rate (float): dropout before the classifier. Defaults to 0.
        drop_path_rate (float): stochastic depth of the deepest block (timm's default 0; the
            ImageNet recipe uses 0.1). Defaults to 0.
        **kwargs: the other ``DSNet`` arguments (``attn_drop_rate``, ``global_strides``,
            ``norm_cfg``, ``with_cp``, ``fused_attn``, ``channels_last``, ...).
    """

    def __init__(self, arch='small', in_chans: int = 3, num_classes: int = 1000,
                 global_pool: str = 'avg', drop_rate: float = 0., drop_path_rate: float = 0.,
                 **kwargs):
        taken = sorted(set(kwargs) & set(_DSNET_ARGS_OWNED_HERE))
        if taken:
            raise TypeError(
                f'DSNetTimm does not take {taken}: the classifier uses stage 4 after the final '
                "norm; for multi-scale maps use timm.create_model(..., features_only=True, "
                'out_indices=(0, 1, 2, 3)), for weights pretrained=True or '
                "pretrained_cfg_overlay=dict(file=...), for input channels in_chans")
        super().__init__(arch=arch, in_channels=in_chans, out_indices=(3, ), final_norm=True,
                         drop_path_rate=drop_path_rate, **kwargs)
        if not 0 <= drop_rate < 1:
            raise ValueError(f'drop_rate must be in [0, 1), got {drop_rate!r}')
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = self.channels[-1]
        self.drop_rate = drop_rate
        self.feature_info = [dict(num_chs=c, reduction=s, module=f'stages.{i}')
                             for i, (c, s) in enumerate(zip(self.channels, self.strides))]
        self.global_pool = self._make_pool(global_pool)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._make_head(num_classes)
        # timm models are initialised when built; an OpenMMLab parent's init_weights (mmpretrain's
        # TIMMBackbone) must not re-initialise them, pretrained weights included.
        self._init_reference_weights()
        self._is_init = True

    @staticmethod
    def _make_pool(global_pool: str) -> nn.Module:
        # '' keeps the map (B, C, H, W), as timm's classifier heads do without pooling
        return SelectAdaptivePool2d(pool_type=global_pool, flatten=bool(global_pool))

    def _make_head(self, num_classes: int) -> nn.Module:
        if num_classes > 0 and not self.global_pool.pool_type:
            raise ValueError(f'global_pool=\'\' keeps the (B, C, H, W) map, which a Linear '
                             f'classifier cannot take: give num_classes=0 with it, or a pool '
                             f"type ('avg', 'max', 'avgmax', 'catavgmax'); got num_classes={num_classes}")
        if num_classes <= 0:
            return nn.Identity()
        head = nn.Linear(self.num_features * self.global_pool.feat_mult(), num_classes)
        trunc_normal_(head.weight, std=.02)   # the mmpretrain configs' TruncNormal head init
        nn.init.zeros_(head.bias)
        return head

    def init_weights(self):
        """Nothing to do: the weights are set when the model is built (timm's way)."""
        self._is_init = True

    # ---------------------------------------------------------------- timm's interface
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        """Parameter groups for timm's layer-wise decay: the first patch embedding is the stem;
        each later patch embedding goes with the first block of its stage."""
        return dict(
            stem=r'^patch_embeds\.0\.',
            blocks=r'^(?:stages|patch_embeds)\.(\d+)' if coarse else [
                (r'^stages\.(\d+)\.(\d+)\.', None),
                (r'^patch_embeds\.(\d+)\.', (0, )),
                (r'^norm\.', (99999, )),
            ])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.stages:
            for block in stage:
                block.with_cp = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = self._make_pool(global_pool)
        self.head = self._make_head(num_classes)

    def _to_internal(self, x):
        if self.training and len(self.stages) == self.num_stages and \
                not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self._check_batch_norm_fits(x)
        # channels-last inside, plain NCHW out, as DSNet.forward
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _to_output(self, x):
        return x.contiguous() if self.channels_last else x

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage maps ``indices`` (timm's meaning: None all, an int the last n, else the
        stage indices), NCHW, at reductions 4, 8, 16, 32.

        Args:
            norm: apply the final BatchNorm to the stage-4 map (the one it is trained on), as
                ``DSNet`` with ``final_norm=True`` does; ``features_only`` models do.
            stop_early: run no stage past the last one asked for.
            intermediates_only: return the maps only, else ``(final features, maps)``.
        """
        if output_fmt != 'NCHW':
            raise ValueError(f"DS-Net gives NCHW maps only, got output_fmt={output_fmt!r}")
        take = _take_indices(indices)
        last = self.num_stages - 1
        if max(take) >= len(self.stages):
            raise ValueError(f'stage {max(take)} was pruned (prune_intermediate_layers): this '
                             f'model keeps stages 0..{len(self.stages) - 1}')
        x = self._to_internal(x)
        intermediates = []
        run = max(take) + 1 if stop_early or intermediates_only else len(self.stages)
        for i in range(run):
            x = self.stages[i](self.patch_embeds[i](x))
            if i in take:
                y = self.norm(x) if norm and i == last else x
                intermediates.append(self._to_output(y))
        if intermediates_only:
            return intermediates
        if run == self.num_stages:
            x = self.norm(x)
        return self._to_output(x), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True):
        """Drop what the stage maps ``indices`` do not need (later stages, the classifier, the
        final norm when ``prune_norm``); -> the absolute indices."""
        take = _take_indices(indices)
        keep = max(take) + 1
        self.patch_embeds = self.patch_embeds[:keep]
        self.stages = self.stages[:keep]
        if prune_norm or keep < self.num_stages:
            self.norm = nn.Identity()   # sized for stage 4 and only applied to it
        if keep < self.num_stages:
            self.num_features = self.head_hidden_size = self.channels[keep - 1]
        if prune_head or keep < self.num_stages:
            self.reset_classifier(0, '')
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normed stage-4 map (B, 512, H/32, W/32): ``DSNet(out_indices=(3, ))``'s output."""
        x = self._to_internal(x)
        for patch_embed, stage in zip(self.patch_embeds, self.stages):
            x = stage(patch_embed(x))
        return self._to_output(self.norm(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# ------------------------------------------------------------------------ pretrained weights


def pretrained_filter_fn(state_dict, model: nn.Module):
    """Any DS-Net classifier checkpoint -> ``DSNetTimm``'s names: PaddleClas ``.pdparams`` and
    reference PyTorch files (through ``checkpoint_filter_fn``), an mmpretrain ImageNet checkpoint
    (``backbone.*``, ``head.fc.*``) or a ``DSNetTimm`` state dict. Raises ``ValueError`` when the
    weights are another DS-Net variant's or lack part of the model (timm loads non-strictly when
    it drops the 1000-class head, which would leave such gaps random)."""
    sd = extract_state_dict(state_dict)
    if any(k.startswith('backbone.') for k in sd):   # mmpretrain ImageClassifier
        sd = OrderedDict((k[len('backbone.'):] if k.startswith('backbone.') else
                          'head.' + k[len('head.fc.'):], v) for k, v in sd.items()
                         if k.startswith(('backbone.', 'head.fc.')))
    sd = checkpoint_filter_fn(sd, model)
    body = OrderedDict((k, v) for k, v in sd.items() if not k.startswith('head.'))
    wrong = arch_mismatch(body, model)
    if wrong:
        raise ValueError(f'cannot load these DS-Net weights: {wrong}')
    missing = [k for k in model.state_dict() if not k.startswith('head.') and k not in body]
    if missing:
        raise ValueError(f'the pretrained weights lack {len(missing)} of the model\'s tensors '
                         f'({name_examples(missing)}); their keys start with '
                         f'{name_examples(sorted({k.split(".")[0] for k in sd}))}: not a DS-Net '
                         'classifier checkpoint')
    return sd


def _weights_in_memory(variant: str, kwargs: dict) -> dict:
    """``kwargs`` with the pretrained weights read by dsnet_mm (download cache, safe reader) and
    handed to timm as ``pretrained_cfg_overlay['state_dict']``. A ``file`` overlay is read from
    disk, else the ``url`` is fetched (or found in the cache); an overlay ``state_dict`` or a
    Hugging Face hub source is left to timm."""
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=kwargs.get('pretrained_cfg'),
                                 pretrained_cfg_overlay=kwargs.get('pretrained_cfg_overlay'))
    if cfg.state_dict is not None or cfg.source in ('hf-hub', 'local-dir'):
        return kwargs
    if cfg.file:
        ckpt = read_checkpoint(cfg.file)
    elif cfg.url and not cfg.hf_hub_id:
        ckpt = load_url(cfg.url)
    else:
        return kwargs   # timm says that there are no weights
    overlay = dict(kwargs.get('pretrained_cfg_overlay') or {})
    overlay['state_dict'] = extract_state_dict(ckpt)
    return dict(kwargs, pretrained_cfg_overlay=overlay)


def _forget_weights(model: nn.Module):
    """Drop the in-memory weights from the pretrained_cfg the model keeps (and the features
    wrapper's copy): they are loaded, and would double the memory for the model's lifetime."""
    for m in (model, getattr(model, 'model', None)):
        cfg = getattr(m, 'pretrained_cfg', None)
        if isinstance(cfg, dict):
            cfg.pop('state_dict', None)


def _create_dsnet(variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    _take_indices(out_indices)   # a clear error now rather than an assert inside timm
    if pretrained:
        kwargs = _weights_in_memory(variant, kwargs)
    model = build_model_with_cfg(
        DSNetTimm, variant, pretrained,
        pretrained_filter_fn=pretrained_filter_fn,
        # features through forward_intermediates; stage 4 after the final norm, as DSNet gives
        # it to detectors (and as the ImageNet weights were trained)
        feature_cfg=dict(out_indices=out_indices, feature_cls='getter', norm=True),
        **kwargs)
    _forget_weights(model)
    return model


def _cfg(url: str = '', **kwargs):
    return {
        'url': url, 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        # mmpretrain's / DeiT's evaluation: resize the short side to 256, centre crop 224
        'crop_pct': 0.875, 'interpolation': 'bicubic', 'fixed_input_size': False,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embeds.0.proj', 'classifier': 'head',
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2105.14734',
        'paper_name': 'Dual-stream Network for Visual Recognition',
        'origin_url': 'https://github.com/PaddlePaddle/PaddleClas',
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    # PaddleClas's ImageNet-1k weights (third-party; paper: 79.0 / 82.3 / 83.1 top-1)
    'dsnet_tiny.in1k': _cfg(url=PADDLECLAS_URL.format('tiny')),
    'dsnet_small.in1k': _cfg(url=PADDLECLAS_URL.format('small')),
    'dsnet_base.in1k': _cfg(url=PADDLECLAS_URL.format('base')),
})


@register_model
def dsnet_tiny(pretrained: bool = False, **kwargs) -> DSNetTimm:
    """DS-Net-T: depths 2, 2, 4, 1; 10.5 M parameters with the 1000-class head."""
    return _create_dsnet('dsnet_tiny', pretrained, **dict(dict(arch='tiny'), **kwargs))


@register_model
def dsnet_small(pretrained: bool = False, **kwargs) -> DSNetTimm:
    """DS-Net-S: depths 3, 4, 8, 3; 23.0 M parameters with the 1000-class head."""
    return _create_dsnet('dsnet_small', pretrained, **dict(dict(arch='small'), **kwargs))


@register_model
def dsnet_base(pretrained: bool = False, **kwargs) -> DSNetTimm:
    """DS-Net-B: depths 3, 4, 28, 3; 49.3 M parameters with the 1000-class head."""
    return _create_dsnet('dsnet_base', pretrained, **dict(dict(arch='base'), **kwargs))
