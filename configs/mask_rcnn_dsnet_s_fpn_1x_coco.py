# Mask R-CNN, DS-Net-S + FPN, 1x (12 epochs), COCO 2017, batch 16 (8 GPUs x 2 images).
#   mim train mmdet configs/mask_rcnn_dsnet_s_fpn_1x_coco.py                    # 1 process
#   mim train mmdet configs/mask_rcnn_dsnet_s_fpn_1x_coco.py --launcher pytorch --gpus 8
# The backbone loads PaddleClas's ImageNet DS-Net-S by URL, downloaded once (see
# configs/_base_/dsnet_backbone.py for a local file instead). Without it:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    './_base_/dsnet_mmdet_1x.py',   # custom_imports, DS-Net backbone, AdamW 1x schedule, runtime
]

model = dict(
    backbone={{_base_.dsnet_backbone}},
    neck=dict(in_channels=[64, 128, 320, 512]))

train_dataloader = dict(batch_size=2)
