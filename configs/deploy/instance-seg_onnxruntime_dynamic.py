# Instance segmentation (boxes, scores, labels, masks) for ONNX Runtime, dynamic batch / height /
# width, opset 16: Mask R-CNN and Cascade Mask R-CNN with DSNet and FPN or DSFPN. (mmdeploy 1.3.1
# exports cascade heads only with reg_class_agnostic=True: docs/deployment.md.)
#
#   python tools/deploy/export_onnx.py configs/deploy/instance-seg_onnxruntime_dynamic.py \
#       configs/mask_rcnn_dsnet_s_fpn_1x_coco.py CHECKPOINT --work-dir work_dirs/deploy/mask_rcnn
#
# Outputs: dets [batch, num_dets, 5], labels [batch, num_dets], masks [batch, num_dets, 28, 28]
# (the mask head's per-RoI probabilities; pasted into the image by mmdeploy's End2EndModel on the
# host, as mmdet does: export_postprocess_mask=False, mmdeploy's default for Mask R-CNN).
_base_ = ['./_base_/onnxruntime_dynamic.py']

onnx_config = dict(
    output_names=['dets', 'labels', 'masks'],
    dynamic_axes={'masks': {0: 'batch', 1: 'num_dets'}})
codebase_config = dict(post_processing=dict(export_postprocess_mask=False))
