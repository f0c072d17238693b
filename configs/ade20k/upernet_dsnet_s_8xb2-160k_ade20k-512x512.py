# UPerNet, DS-Net-S, ADE20K 512 x 512, 160k iterations, batch 16 (8 GPUs x 2), the Swin recipe:
# AdamW lr 6e-5, wd 0.01, 1500 linear warm-up iterations, poly (power 1).
#   mim train mmseg configs/ade20k/upernet_dsnet_s_8xb2-160k_ade20k-512x512.py
# Backbone weights: PaddleClas's DS-Net-S, downloaded once (see _base_/dsnet_mmseg.py);
# without them: --cfg-options model.backbone.init_cfg=None
# One full root per segmentor, as mmseg's own configs: this and
# fpn_dsnet_s_8xb4-80k_ade20k-512x512.py
# differ in model base, schedule, heads and optimiser; what they share is in
# _base_/dsnet_mmseg.py.
_base_ = [
    './_base_/dsnet_mmseg.py',   # first: it makes `mmseg::` resolvable on OneDL (see there)
    'mmseg::_base_/models/upernet_swin.py',
    'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
model = dict(
    pretrained=None,   # the backbone's init_cfg loads the weights
    data_preprocessor=dict(size=crop_size),
    backbone={{_base_.dsnet_backbone}},
    decode_head=dict(
        in_channels=[64, 128, 320, 512], num_classes=150, norm_cfg={{_base_.head_norm_cfg}}),
    auxiliary_head=dict(in_channels=320, num_classes=150, norm_cfg={{_base_.head_norm_cfg}}))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg={{_base_.dsnet_paramwise_cfg}})

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader

# checkpoints are written to a temp file and renamed into place: a job killed while saving
# leaves the previous checkpoint (and last_checkpoint) usable for --resume
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
