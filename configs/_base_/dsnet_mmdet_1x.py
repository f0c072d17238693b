# Base fragment of the DS-Net mmdet configs (not a config to train by itself): the plugin import,
# the DS-Net-S backbone (as the variable `dsnet_backbone`, used as `model.backbone`), the
# AdamW 1x schedule of the Swin / ConvNeXt detection recipes and the multi-scale 3x pieces.
_base_ = [
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]

custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)
# checkpoints are written to a temp file and renamed into place: a job killed while saving
# leaves the previous checkpoint (and last_checkpoint) usable for --resume
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# ImageNet-1k weights: PaddleClas's public DS-Net-S file, downloaded once into torch's hub cache
# ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints) and converted on load.
# prefix='auto' also takes a converted / mmpretrain file (keys 'backbone.*'): offline, or with
# your own weights, add
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/dsnet_s_in1k.pth
# (python tools/model_converters/dsnet_to_mmpretrain.py SRC checkpoints/dsnet_s_in1k.pth, SRC a
# PaddleClas .pdparams or reference DS-Net .pth, path or URL; or train configs/imagenet/).
# Without weights (from scratch, or smoke tests) add
#   --cfg-options model.backbone.init_cfg=None
# and, since frozen BN statistics only make sense for pre-trained weights, also
#   model.backbone.norm_eval=False
dsnet_backbone = dict(
    _delete_=True,
    type='DSNet',
    arch='small',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.2,
    # BatchNorm statistics stay at their ImageNet values (2 images per GPU give poor batch
    # statistics; mmdet's BN backbones do the same). The BN affine weights still train.
    norm_eval=True,
    frozen_stages=-1,
    with_cp=False,   # True trades compute for memory (activation checkpointing per block)
    init_cfg=dict(
        type='Pretrained',
        checkpoint='https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_small_pretrained.pdparams',
        prefix='auto'))

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

train_cfg = dict(max_epochs=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=12,
        by_epoch=True,
        milestones=[8, 11],
        gamma=0.1)
]
# the lr above is for 16 images per iteration; `--auto-scale-lr` rescales it for other batches
auto_scale_lr = dict(enable=False, base_batch_size=16)

# ---- 3x multi-scale recipe (used by the *_ms-3x_coco configs) ------------------------------
# DETR-style augmentation as mmdet's Swin / ConvNeXt 3x configs: shorter side 480-800, or
# resize 400-600, random crop 384-600, then 480-800.
dsnet_ms_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
                   (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
                   (800, 1333)]
dsnet_ms3x_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=dsnet_ms_scales, keep_ratio=True)],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 1333), (500, 1333), (600, 1333)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=dsnet_ms_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
dsnet_ms3x_train_cfg = dict(max_epochs=36)
dsnet_ms3x_param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(
        type='MultiStepLR',
        begin=0,
        end=36,
        by_epoch=True,
        milestones=[27, 33],
        gamma=0.1)
]
