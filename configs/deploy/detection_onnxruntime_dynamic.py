# Detection (boxes, scores, labels) for ONNX Runtime, dynamic batch / height / width, opset 16.
# For RetinaNet and Faster R-CNN, with DSNet and FPN or DSFPN (the deploy config does not depend on
# backbone or neck). Mask R-CNN: instance-seg_onnxruntime_dynamic.py (its dets and labels are these).
#
#   python tools/deploy/export_onnx.py configs/deploy/detection_onnxruntime_dynamic.py \
#       configs/retinanet_dsnet_t_fpn_1x_coco.py CHECKPOINT --work-dir work_dirs/deploy/retinanet
#
# Outputs: dets [batch, num_dets, 5] (x1, y1, x2, y2, score in the network input's pixels),
# labels [batch, num_dets] (int64).
_base_ = ['./_base_/onnxruntime_dynamic.py']
