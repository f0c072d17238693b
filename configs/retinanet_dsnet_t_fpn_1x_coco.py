# RetinaNet, DS-Net-T + FPN, 1x. Weights: PaddleClas DSNet_tiny_pretrained.pdparams (downloaded
# once); without them:
#   --cfg-options model.backbone.init_cfg=None model.backbone.norm_eval=False
_base_ = './retinanet_dsnet_s_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='tiny',
        drop_path_rate=0.1,
        init_cfg=dict(checkpoint='https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_tiny_pretrained.pdparams')))
