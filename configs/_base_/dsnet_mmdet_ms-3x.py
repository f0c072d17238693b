# The multi-scale 3x recipe of the *_ms-3x_coco configs (not a config to train by itself), as
# variables: those configs inherit their 1x config as well, which already defines
# train_dataloader, train_cfg and param_scheduler (two bases may not define the same key).
# DETR-style augmentation as mmdet's Swin / ConvNeXt 3x configs: shorter side 480-800, or
# resize 400-600, random crop 384-600, then 480-800; 36 epochs, steps at 27 and 33.
dsnet_ms_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
                   (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
                   (800, 1333)]
dsnet_ms3x_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=dsnet_ms_scales, keep_ratio=True)],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 1333), (500, 1333), (600, 1333)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=dsnet_ms_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
dsnet_ms3x_train_cfg = dict(max_epochs=36)
dsnet_ms3x_param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1)
]
