# Mask R-CNN, DS-Net-S + DS-FPN, multi-scale 3x.
_base_ = './mask_rcnn_dsnet_s_fpn_ms-3x_coco.py'

model = dict(neck=dict(type='DSFPN'))
