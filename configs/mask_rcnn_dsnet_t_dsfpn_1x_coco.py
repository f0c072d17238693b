# Mask R-CNN, DS-Net-T + DS-FPN, 1x.
_base_ = './mask_rcnn_dsnet_t_fpn_1x_coco.py'

model = dict(neck=dict(type='DSFPN'))
