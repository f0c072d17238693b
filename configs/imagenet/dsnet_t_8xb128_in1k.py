# DS-Net-T, ImageNet-1k, the reference recipe (see dsnet_s_8xb128_in1k.py).
_base_ = './dsnet_s_8xb128_in1k.py'

model = dict(backbone=dict(arch='tiny'))
