# DS-Net-S, ImageNet-1k, 224 x 224, the recipe of the paper and its reference code (DeiT's):
# 300 epochs, AdamW lr 1e-3 at batch 1024 (8 GPUs x 128), wd 0.05, cosine with 5 warm-up epochs,
# RandAugment m9, Mixup 0.8 / CutMix 1.0, label smoothing 0.1, random erasing 0.25,
# drop-path 0.1, EMA of the weights.
#   mim train mmpretrain configs/imagenet/dsnet_s_8xb128_in1k.py --launcher pytorch --gpus 8
# The trained checkpoint's `backbone.*` keys load into the detection / segmentation configs
# with --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_300.pth (prefix 'auto').
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',   # RandAugment m9, RandomErasing 0.25
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)
# checkpoints are written to a temp file and renamed into place: a job killed while saving
# leaves the previous checkpoint (and last_checkpoint) usable for --resume
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DSNet',
        arch='small',
        out_indices=(3, ),   # the classifier sees the last stage only, after the final BN
        final_norm=True,
        drop_path_rate=0.1,
        attn_drop_rate=0.1,  # the reference's hard-coded attention dropout
        init_cfg=None),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=512,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=.02)),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader

# AdamW lr 1e-3 for 1024 images per iteration; the reference (timm) exempts every 1-D
# parameter (biases, norm affine) from weight decay.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0),
    clip_grad=None,
)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=5,
        convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5, end=300),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)

# EMA of the weights (timm ModelEma decay 0.99996 -> momentum 4e-5)
custom_hooks = [dict(type='EMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]

auto_scale_lr = dict(base_batch_size=1024)
