# Semantic FPN with the DS-FPN neck (dsnet_mm's design of the paper's Dual-stream FPN), DS-Net-S,
# ADE20K 512 x 512, 80k iterations (see fpn_dsnet_s_8xb4-80k_ade20k-512x512.py).
_base_ = './fpn_dsnet_s_8xb4-80k_ade20k-512x512.py'

model = dict(neck=dict(type='DSFPN'))
