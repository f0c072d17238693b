# Cascade Mask R-CNN, DS-Net-S + FPN, 3x (36 epochs, steps 27 / 33), multi-scale 480-800 with the
# DETR-style random-crop branch (mmdet's ConvNeXt cascade ms-crop-3x recipe, without AMP and
# layer-wise lr decay).
_base_ = ['./cascade_mask_rcnn_dsnet_s_fpn_1x_coco.py', './_base_/dsnet_mmdet_ms-3x.py']

train_dataloader = dict(dataset=dict(pipeline={{_base_.dsnet_ms3x_train_pipeline}}))
train_cfg = {{_base_.dsnet_ms3x_train_cfg}}
param_scheduler = {{_base_.dsnet_ms3x_param_scheduler}}
