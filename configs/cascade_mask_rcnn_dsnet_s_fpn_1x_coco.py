# Cascade Mask R-CNN, DS-Net-S + FPN, 1x, COCO 2017, batch 16 (8 GPUs x 2 images).
# Heads as mmdet's ConvNeXt cascade configs: three 4conv1fc box heads with GIoU loss, AdamW lr 2e-4.
# Those use SyncBN in the box heads; here they use BN, which also runs in one process (a
# SyncBN layer would be reverted to BN by mmengine's runner outside distributed runs anyway, but
# not when the model is built by hand). For multi-GPU runs turn every BN (heads and backbone)
# into SyncBN with  --cfg-options sync_bn=torch  (mmengine converts them only when launched
# distributed).
# Weights: PaddleClas DSNet_small_pretrained.pdparams (downloaded once); without them:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './_base_/dsnet_mmdet_1x.py',
]

head_norm_cfg = dict(type='BN', requires_grad=True)


def _box_head(target_stds):
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=target_stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=head_norm_cfg,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    backbone={{_base_.dsnet_backbone}},
    neck=dict(in_channels=[64, 128, 320, 512]),
    roi_head=dict(bbox_head=[
        _box_head([0.1, 0.1, 0.2, 0.2]),
        _box_head([0.05, 0.05, 0.1, 0.1]),
        _box_head([0.033, 0.033, 0.067, 0.067]),
    ]))
del _box_head

train_dataloader = dict(batch_size=2)
optim_wrapper = dict(optimizer=dict(lr=0.0002))
