# Base fragment of the DS-Net mmdet configs (not a config to train by itself): the plugin import,
# the DS-Net backbone (./dsnet_backbone.py) with mmdet's BN settings, the AdamW 1x schedule of
# the Swin / ConvNeXt detection recipes, and flip + multi-scale test-time augmentation for
# `mim test ... --tta` (./dsnet_tta.py). The 3x recipe: ./dsnet_mmdet_ms-3x.py.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './dsnet_backbone.py',
    './dsnet_tta.py',
]

custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)
# checkpoints are written to a temp file and renamed into place: a job killed while saving
# leaves the previous checkpoint (and last_checkpoint) usable for --resume
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# BatchNorm statistics stay at their ImageNet values (2 images per GPU give poor batch
# statistics; mmdet's BN backbones do the same). The BN affine weights still train.
dsnet_backbone = dict(norm_eval=True, frozen_stages=-1)

# AdamW lr 1e-4, wd 0.05 at batch 16 (8 GPUs x 2 images); no decay on any norm layer (backbone,
# neck, heads) nor on the conditional position encodings (`pos_embed` depthwise convs).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={'pos_embed': dict(decay_mult=0.)}))

# 12 epochs, steps at 8 and 11 (mmdet's schedule_1x), after 1000 linear warm-up iterations
train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1)
]
# the lr above is for 16 images per iteration; `--auto-scale-lr` rescales it for other batches
auto_scale_lr = dict(enable=False, base_batch_size=16)
