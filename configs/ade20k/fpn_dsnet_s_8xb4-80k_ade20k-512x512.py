# Semantic FPN, DS-Net-S, ADE20K 512 x 512, 80k iterations, batch 32 (8 GPUs x 4), the PVT /
# Twins recipe: AdamW lr 1e-4, wd 1e-4, poly (power 0.9).
#   mim train mmseg configs/ade20k/fpn_dsnet_s_8xb4-80k_ade20k-512x512.py
# Backbone weights: PaddleClas's DS-Net-S, downloaded once (see _base_/dsnet_mmseg.py);
# without them: --cfg-options model.backbone.init_cfg=None
# One full root per segmentor, as mmseg's own configs: this and
# upernet_dsnet_s_8xb2-160k_ade20k-512x512.py
# differ in model base, schedule, heads and optimiser; what they share is in
# _base_/dsnet_mmseg.py.
_base_ = [
    './_base_/dsnet_mmseg.py',   # first: it makes `mmseg::` resolvable on OneDL (see there)
    'mmseg::_base_/models/fpn_r50.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
crop_size = (512, 512)
model = dict(
    pretrained=None,   # the base's ResNet URL; the backbone's init_cfg loads the weights
    data_preprocessor=dict(size=crop_size),
    backbone={{_base_.dsnet_backbone}},
    neck=dict(in_channels=[64, 128, 320, 512]),
    decode_head=dict(num_classes=150, norm_cfg={{_base_.head_norm_cfg}}))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001),
    paramwise_cfg={{_base_.dsnet_paramwise_cfg}},
    clip_grad=None)

param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False),
]

train_dataloader = dict(batch_size=4)

# checkpoints are written to a temp file and renamed into place: a job killed while saving
# leaves the previous checkpoint (and last_checkpoint) usable for --resume
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
