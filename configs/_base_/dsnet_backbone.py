# The DS-Net backbone of the COCO and ADE20K configs, in one place (not a config to train by
# itself): the variable `dsnet_backbone` (DS-Net-S), which those configs put at `model.backbone`,
# and what the tiny / base variants change in it (`dsnet_tiny`, `dsnet_base`, merged into
# `model.backbone` by their configs). A variable, not `model.backbone`, because the configs also
# inherit a model from mmdet / mmseg, and two bases may not both define `model`.
#
# ImageNet-1k weights: PaddleClas's public DS-Net files, downloaded once into torch's hub cache
# ($TORCH_HOME/hub/checkpoints, by default ~/.cache/torch/hub/checkpoints) and converted on load.
# prefix='auto' also takes a converted / mmpretrain file (keys 'backbone.*'): offline, or with
# your own weights, add
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/dsnet_s_in1k.pth
# (python tools/model_converters/dsnet_to_mmpretrain.py SRC checkpoints/dsnet_s_in1k.pth, SRC a
# PaddleClas .pdparams or reference DS-Net .pth, path or URL; or train configs/imagenet/).
# Without weights (from scratch, or smoke tests) add
#   --cfg-options model.backbone.init_cfg=None
# and, for the detectors (frozen BN statistics only make sense for pre-trained weights), also
#   model.backbone.norm_eval=False
paddleclas_weights = 'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_{}_pretrained.pdparams'
dsnet_backbone = dict(
    _delete_=True,   # replaces the ResNet of the mmdet / mmseg model bases
    type='DSNet',
    arch='small',
    out_indices=(0, 1, 2, 3),
    drop_path_rate=0.2,
    with_cp=False,   # True trades compute for memory (activation checkpointing per block)
    init_cfg=dict(type='Pretrained', checkpoint=paddleclas_weights.format('small'), prefix='auto'))
dsnet_tiny = dict(arch='tiny', drop_path_rate=0.1,
                  init_cfg=dict(checkpoint=paddleclas_weights.format('tiny')))
dsnet_base = dict(arch='base', drop_path_rate=0.3,
                  init_cfg=dict(checkpoint=paddleclas_weights.format('base')))
