"""What dsnet_mm's tools share (tools/benchmark_coco.py, tools/analysis_tools/get_flops.py,
tools/deploy/eval_onnx.py): COCO evaluation rows and their table, FLOP counting, timing, a model
built from its config without pre-trained weights."""
from .benchmark import (HOW_TO_GET_DATA, BenchmarkError, build_without_weights, check_dataset,
                        coco_ap_columns, count_flops, markdown, measure_speed)

__all__ = ['BenchmarkError', 'HOW_TO_GET_DATA', 'build_without_weights', 'check_dataset',
           'coco_ap_columns', 'count_flops', 'markdown', 'measure_speed']
