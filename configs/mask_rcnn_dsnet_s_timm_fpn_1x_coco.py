# Mask R-CNN, DS-Net-S + FPN, 1x (12 epochs), COCO 2017: configs/mask_rcnn_dsnet_s_fpn_1x_coco.py
# with the backbone built by timm. `import dsnet_mm.timm` registers timm's `dsnet_small`, and
# mmpretrain's TIMMBackbone builds it with features_only=True: the same DSNet modules and the same
# four maps (strides 4, 8, 16, 32; stage 4 after the final BatchNorm), so the two configs train the
# same network. Needs timm (pip install "dsnet_mm[timm]").
#   mim train mmdet configs/mask_rcnn_dsnet_s_timm_fpn_1x_coco.py
# pretrained=True: PaddleClas's ImageNet DS-Net-S (timm's pretrained_cfg URL), downloaded once into
# torch's hub cache by dsnet_mm, as the DSNet configs do. Without it:
#   --cfg-options model.backbone.pretrained=False model.backbone.norm_eval=False
_base_ = ['./mask_rcnn_dsnet_s_fpn_1x_coco.py']

# mmpretrain.models registers TIMMBackbone; dsnet_mm.timm the timm models
custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine', 'dsnet_mm.timm', 'mmpretrain.models'],
                      allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.TIMMBackbone',
        model_name='dsnet_small',
        features_only=True,
        out_indices=(0, 1, 2, 3),
        pretrained=True,
        # the rest goes to the timm model (DSNet's arguments), as in the DSNet config
        drop_path_rate=0.2,
        norm_eval=True))
