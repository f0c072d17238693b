# RetinaNet, DS-Net-S + FPN (P3-P7: start_level=1, extra convs on the stage-4 input), 1x,
# COCO 2017 boxes, batch 16 (8 GPUs x 2 images), AdamW lr 1e-4 as the Mask R-CNN configs.
# Weights: PaddleClas DSNet_small_pretrained.pdparams (downloaded once); without them:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/dsnet_mmdet_1x.py',
]

# The neck starts at stage 2 (start_level=1 of the base); stage 1's map is computed anyway (stage 2
# is built on it), so outputting it leaves no parameter without a gradient.
model = dict(
    backbone={{_base_.dsnet_backbone}},
    neck=dict(in_channels=[64, 128, 320, 512]))

train_dataloader = dict(batch_size=2)
