# Detection (boxes, scores, labels) for ONNX Runtime, dynamic batch / height / width, opset 16.
# For RetinaNet, Faster R-CNN and the box branch of Mask / Cascade Mask R-CNN, with DSNet and FPN
# or DSFPN (the deploy config does not depend on backbone or neck).
#
#   python tools/deploy/export_onnx.py configs/deploy/detection_onnxruntime_dynamic.py \
#       configs/retinanet_dsnet_t_fpn_1x_coco.py CHECKPOINT --work-dir work_dirs/deploy/retinanet
#
# Outputs: dets [batch, num_dets, 5] (x1, y1, x2, y2, score in the network input's pixels),
# labels [batch, num_dets] (int64).
_base_ = ['./_base_/onnxruntime_dynamic.py']
