# Base fragment of the DS-Net ADE20K configs (not a config to train by itself): the plugin import
# and the DS-Net-S backbone as the variable `dsnet_backbone` (used as `model.backbone`).
custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)
# On the OneDL stack `mmseg::` bases resolve only after dsnet_mm has pointed the scope at
# onedl-mmsegmentation (dsnet_mm.registry.fix_config_scopes), and custom_imports run after all bases
# are read: the configs list this file first in `_base_`, so this import runs before mmengine looks
# up their `mmseg::` bases. (`_base_ = []` keeps it an old-style config: mmengine reads a file with
# a bare import and no `_base_` as a new-style one.)
_base_ = []
import dsnet_mm  # noqa: E402,F401
# (each leaf config sets default_hooks.checkpoint to AtomicCheckpointHook: the schedule bases
# define default_hooks, and keys may not repeat among bases)

# ImageNet-1k weights: PaddleClas's public DS-Net-S file, downloaded once into torch's hub cache
# ($TORCH_HOME/hub/checkpoints) and converted on load. A local converted / mmpretrain file works
# too (prefix='auto'): --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/dsnet_s_in1k.pth
# (python tools/model_converters/dsnet_to_mmpretrain.py SRC checkpoints/dsnet_s_in1k.pth).
# Without weights: --cfg-options model.backbone.init_cfg=None
dsnet_backbone = dict(
    _delete_=True,
    type='DSNet',
    arch='small',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.2,
    norm_eval=False,
    with_cp=False,
    init_cfg=dict(
        type='Pretrained',
        checkpoint='https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_small_pretrained.pdparams',
        prefix='auto'))

# BN everywhere (heads and backbone) so a single process / CPU run works. For multi-GPU runs,
# synchronise the statistics across GPUs with  --cfg-options sync_bn=torch  (mmengine then turns
# every BN into SyncBN, only when launched distributed).
head_norm_cfg = dict(type='BN', requires_grad=True)

# AdamW without weight decay on norm layers and on the conditional position encodings
dsnet_paramwise_cfg = dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)})
