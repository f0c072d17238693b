# Mask R-CNN, DS-Net-S + FPN, 1x, COCO 2017: mask_rcnn_dsnet_s_fpn_1x_coco.py fine-tuned with
# layer-wise learning-rate decay (docs/timm_llrd_tta.md): the deeper a backbone layer, the closer
# its lr to the base lr, so the ImageNet features of the early layers move least.
#   mim train mmdet configs/mask_rcnn_dsnet_s_fpn_llrd_1x_coco.py
_base_ = './mask_rcnn_dsnet_s_fpn_1x_coco.py'

# dsnet_mm.engine.layer_decay (needs mmpretrain): mmpretrain's layer-decay constructor taking
# the layer depths from the detector's backbone (mmpretrain's own asks the detector itself)
custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine', 'dsnet_mm.engine.layer_decay'],
                      allow_failed_imports=False)

# DSNet.get_layer_depth gives one layer per DS-Block: DS-Net-S has 20 (stem 0, blocks 1-18,
# final norm / neck / heads 19). lr = 1e-4 * 0.9 ** (19 - layer): the stem at 0.9 ** 19 = 0.14
# of the base lr, stage 1 at 0.15-0.19, stage 3 at 0.31-0.66, stage 4 at 0.73-0.9, neck and
# heads at 1. Between ConvNeXt's detection recipes: the official ones put the stem at 0.06-0.08
# (0.7 over 8 levels for ConvNeXt-T, 0.8 over 14 for -S), mmdet's ConvNeXt-T at 0.70 (0.95 over 8).
# No weight decay on norms, biases and position-encoding convs (1-D and positional parameters,
# as the ConvNeXt and BEiT recipes); the base lr, AdamW and the schedule are the 1x config's.
optim_wrapper = dict(
    constructor='BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.9, norm_decay_mult=0., bias_decay_mult=0.))
