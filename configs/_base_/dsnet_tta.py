# Test-time augmentation of the DS-Net detection configs (not a config by itself), read by
# `mim test mmdet CONFIG CHECKPOINT --tta` (mmdet's tools/test.py: cfg.tta_model wraps the
# detector, cfg.tta_pipeline replaces the test pipeline). As mmdet's own TTA configs
# (configs/retinanet/retinanet_tta.py): three scales x {flipped, not flipped} = 6 views per image,
# merged by class-wise NMS (IoU 0.5), 100 detections kept. DetMaskTTAModel (dsnet_mm) is mmdet's
# DetTTAModel that merges the instance masks too (mmdet's refuses them): flipped views' masks
# are flipped back and each kept box gets the score-weighted vote of the masks NMS merged into
# it; box-only detectors (RetinaNet) are merged as mmdet merges them.
tta_model = dict(
    type='DetMaskTTAModel',
    tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))

tta_img_scales = [(1333, 800), (666, 400), (2000, 1200)]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=s, keep_ratio=True) for s in tta_img_scales],
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='LoadAnnotations', with_bbox=True)],
            [dict(type='PackDetInputs',
                  meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                             'flip', 'flip_direction'))],
        ])
]
