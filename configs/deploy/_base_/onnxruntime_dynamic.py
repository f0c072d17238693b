# mmdeploy deploy config, shared part: ONNX (opset 16) for ONNX Runtime, dynamic batch, height and
# width. The same keys and values as mmdeploy's own configs/_base_/onnx_config.py,
# configs/_base_/backends/onnxruntime.py and configs/mmdet/_base_/base_{static,dynamic}.py (the
# wheel ships no configs, so they are written out here), except the opset:
#
# opset_version=16, not mmdeploy's default 11. mmdeploy exports mmcv's RoIAlign as the standard ONNX
# `RoiAlign`. Before opset 16 that op has no coordinate_transformation_mode: mmdeploy shifts the RoIs
# by -0.5 instead, but the op then clamps every RoI to at least one feature cell, which mmcv's
# `aligned=True` does not, so small RoIs are pooled differently (a trained Mask R-CNN exported with
# opset 11 gave 12 detections instead of 15). Opset 16 has coordinate_transformation_mode=half_pixel:
# exactly mmcv's aligned=True. tests/test_tools/test_deploy.py fails if a RoIAlign config goes below 16.
onnx_config = dict(
    type='onnx',
    export_params=True,
    keep_initializers_as_inputs=False,
    opset_version=16,
    save_file='end2end.onnx',
    input_names=['input'],
    output_names=['dets', 'labels'],
    input_shape=None,          # dynamic: the test image's size after the model's test pipeline
    optimize=False,            # mmdeploy's graph passes need its C++ extension (not in the wheel)
    dynamic_axes={
        'input': {0: 'batch', 2: 'height', 3: 'width'},
        'dets': {0: 'batch', 1: 'num_dets'},
        'labels': {0: 'batch', 1: 'num_dets'},
    })
backend_config = dict(type='onnxruntime')
codebase_config = dict(
    type='mmdet',
    task='ObjectDetection',
    model_type='end2end',
    # Used where the model's test_cfg has no value of its own (score_thr, max_per_img and
    # nms.iou_threshold of the model config win). pre_top_k=-1: no cut before NMS, as mmdet.
    post_processing=dict(
        score_threshold=0.05,
        confidence_threshold=0.005,   # YOLOv3 only
        iou_threshold=0.5,
        max_output_boxes_per_class=200,
        pre_top_k=-1,
        keep_top_k=100,
        background_label_id=-1,
    ))
