# Mask R-CNN + DS-Net-T + FPN on the embedded "shapes" set: the quick-start job (tools/quickstart.sh).
#
# From scratch (no ImageNet weights offline), 128 x 128 images, about 9 min of training on one CPU core.
# Make the data first:  python tools/dataset_converters/make_shapes_coco.py   (-> data/shapes/)
#
# Neck: mmdet's plain FPN, not DSFPN. The quick start has to learn from scratch in minutes on two
# CPU cores; DSFPN adds a dual-stream attention block per level (more compute and more weights
# to train from random init) for context that 128-px images with a few shapes do not need.
# Switching is one line (neck type='DSFPN', same arguments).
#
# Heads are slimmed for CPU speed (docs/quickstart.md measures each lever): 64 FPN channels,
# 256-d box FCs, 2 mask convs of 64 channels, 100 proposals and 32 RoIs per image; at 128 px the
# heads' fixed cost per RoI and per level weighs as much as the backbone. Four pyramid levels
# (strides 4-32, no P6): objects are 10-60 px, so anchors are halved (scale 4: 16..128 px).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
# dsnet_mm.engine.cpu_distributed: --launcher pytorch on CPUs (gloo; see dsnet_mm/engine/dist.py)
custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine', 'dsnet_mm.engine.cpu_distributed'],
                      allow_failed_imports=False)

classes = ('circle', 'triangle', 'rectangle')
num_classes = len(classes)
img_size = 128
ch = 64           # FPN / head width
strides = [4, 8, 16, 32]   # one pyramid level each
max_epochs = 8    # 600 images / batch 8 = 75 iters per epoch
batch_size = 8

model = dict(
    data_preprocessor=dict(pad_size_divisor=32),
    # Not configs/_base_/dsnet_backbone.py's: from scratch (no ImageNet weights, BatchNorm
    # statistics train: DSNet's default norm_eval=False) and no stochastic depth or attention
    # dropout, which only slow down learning in a run this short.
    backbone=dict(_delete_=True, type='DSNet', arch='tiny', drop_path_rate=0.0, attn_drop_rate=0.0,
                  init_cfg=None),
    neck=dict(type='FPN', in_channels=[64, 128, 320, 512], out_channels=ch, num_outs=len(strides)),
    rpn_head=dict(
        in_channels=ch,
        feat_channels=ch,
        anchor_generator=dict(scales=[4], strides=strides)),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=ch, featmap_strides=strides),
        bbox_head=dict(in_channels=ch, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=ch, featmap_strides=strides),
        mask_head=dict(num_convs=2, in_channels=ch, conv_out_channels=64,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(sampler=dict(num=32), mask_size=28)),
    test_cfg=dict(
        rpn=dict(nms_pre=300, max_per_img=100),
        rcnn=dict(max_per_img=50)))

dataset_type = 'CocoDataset'
data_root = 'data/shapes/'
metainfo = dict(classes=classes)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# `mim test mmdet CONFIG CHECKPOINT --tta`: 3 scales around the 128 px the model learnt at x
# {flipped, not flipped} = 6 views, merged by class-wise NMS; DetMaskTTAModel keeps the masks too
# (as configs/_base_/dsnet_tta.py for COCO)
tta_model = dict(
    type='DetMaskTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=50))
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(s, s), keep_ratio=True) for s in (112, 128, 160)],
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='LoadAnnotations', with_bbox=True)],
            [dict(type='PackDetInputs',
                  meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                             'flip', 'flip_direction'))],
        ])
]
shapes = dict(type=dataset_type, data_root=data_root, metainfo=metainfo)   # both splits
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    batch_sampler=None,
    dataset=dict(shapes, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(shapes, ann_file='annotations/instances_val.json', data_prefix=dict(img='val/'),
                 test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val.json',
    metric=['bbox', 'segm'],
    format_only=False)
test_evaluator = val_evaluator

# evaluate every 2 epochs (4 points of the quick start's val mAP curve; ~10 s each)
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=2)
# Warm-up, the full lr until the last 2 epochs, then cosine down to 2 %. From scratch the detector
# is still learning fast at full lr: decaying from epoch 1 on (cosine over the whole run) ended 8
# epochs at 0.545 box mAP, this schedule at 0.676 (docs/quickstart.md).
warmup_iters = 100
decay_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=max_epochs - decay_epochs, end=max_epochs,
         T_max=decay_epochs, eta_min_ratio=0.02, convert_to_iter_based=True),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=10.0),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # never half-written; keeps the last 2 (see dsnet_mm/engine/hooks.py)
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=2),
    visualization=dict(type='DetVisualizationHook', draw=False))
# mean of the losses over ranks in multi-process runs (no-op in one process); a killed
# `mim train` leaves no trainer or DataLoader worker behind
custom_hooks = [dict(type='MeanLossHook'), dict(type='ExitWithLauncherHook')]
log_processor = dict(window_size=10)
# multi-process (mim train ... --launcher pytorch): gloo and a DDP wrapper that accepts CPU modules; on GPUs
# use backend='nccl' (DeviceAwareDDP is plain MMDistributedDataParallel there)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
model_wrapper_cfg = dict(type='DeviceAwareDDP')
randomness = dict(seed=0, deterministic=False)
