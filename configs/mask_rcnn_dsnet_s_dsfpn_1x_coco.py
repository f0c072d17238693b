# Mask R-CNN, DS-Net-S + DS-FPN (dsnet_mm's design of the paper's Dual-stream FPN: FPN plus one
# dual-stream block per level, see dsnet_mm/models/necks/dsfpn.py), 1x.
_base_ = './mask_rcnn_dsnet_s_fpn_1x_coco.py'

model = dict(neck=dict(type='DSFPN'))
