# Mask R-CNN, DS-Net-B + FPN, 1x. Weights: PaddleClas DSNet_base_pretrained.pdparams (downloaded
# once);
# without them: --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = './mask_rcnn_dsnet_s_fpn_1x_coco.py'

model = dict(backbone={{_base_.dsnet_base}})   # configs/_base_/dsnet_backbone.py
