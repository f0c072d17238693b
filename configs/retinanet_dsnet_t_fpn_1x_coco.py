# RetinaNet, DS-Net-T + FPN, 1x. Weights: PaddleClas DSNet_tiny_pretrained.pdparams (downloaded
# once); without them:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = './retinanet_dsnet_s_fpn_1x_coco.py'

model = dict(backbone={{_base_.dsnet_tiny}})   # configs/_base_/dsnet_backbone.py
