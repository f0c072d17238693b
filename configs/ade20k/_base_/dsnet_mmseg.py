# Base fragment of the DS-Net ADE20K configs (not a config to train by itself): the plugin import
# and the DS-Net backbone of configs/_base_/dsnet_backbone.py (the variable `dsnet_backbone`, used
# as `model.backbone`) with mmseg's BN setting. A fragment of its own because it must come first
# in the configs' `_base_` (see below) and carry no mmdet schedule.
_base_ = ['../../_base_/dsnet_backbone.py']
custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)
# On the OneDL stack `mmseg::` bases resolve only after dsnet_mm.utils.config_scopes has pointed
# the scope at onedl-mmsegmentation, and custom_imports run after all bases are read: the configs
# list this file first in `_base_`, so this import runs before mmengine looks up their `mmseg::`
# bases (upstream it changes nothing).
import dsnet_mm.utils.config_scopes  # noqa: E402,F401
# (each root config sets default_hooks.checkpoint to AtomicCheckpointHook: the schedule bases
# define default_hooks, and keys may not repeat among bases)

# BN statistics train (batch 4 / 2 per GPU at 512 x 512, as mmseg's BN backbones do)
dsnet_backbone = dict(norm_eval=False)

# BN everywhere (heads and backbone) so a single process / CPU run works. For multi-GPU runs,
# synchronise the statistics across GPUs with  --cfg-options sync_bn=torch  (mmengine then turns
# every BN into SyncBN, only when launched distributed).
head_norm_cfg = dict(type='BN', requires_grad=True)

# AdamW without weight decay on norm layers and on the conditional position encodings
dsnet_paramwise_cfg = dict(norm_decay_mult=0., custom_keys={'pos_embed': dict(decay_mult=0.)})
