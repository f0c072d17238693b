# Mask R-CNN, DS-Net-B + FPN, 1x. Weights: checkpoints/dsnet_b_in1k.pth
# (python tools/model_converters/dsnet_to_mmpretrain.py SRC checkpoints/dsnet_b_in1k.pth);
# without them: --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = './mask_rcnn_dsnet_s_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/dsnet_b_in1k.pth')))
