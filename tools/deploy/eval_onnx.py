"""Evaluate an exported ``end2end.onnx`` in ONNX Runtime on a COCO-format dataset.

    .venv-deploy/bin/python tools/deploy/eval_onnx.py DEPLOY_CFG MODEL_CFG ONNX \
        [--out-dir work_dirs/deploy_eval] [--speed-images 50] [--cfg-options ...]

    # e.g. the quick-start model after tools/deploy/export_onnx.py:
    .venv-deploy/bin/python tools/deploy/eval_onnx.py \
        configs/deploy/instance-seg_onnxruntime_dynamic.py \
        configs/embedded/mask_rcnn_dsnet_t_fpn_shapes.py work_dirs/deploy/shapes/end2end.onnx

mmdeploy's test machinery, as its ``tools/test.py`` uses it: the task processor builds the backend
model (``End2EndModel`` around mmdeploy's ``ORTWrapper``) and a ``DeployTestRunner`` with the model
config's ``test_dataloader`` and ``test_evaluator`` (``CocoMetric``, pycocotools), and
``runner.test()`` evaluates. The checks, columns and table are tools/benchmark_coco.py's
(``dsnet_mm.apis``), so the numbers sit next to PyTorch's; params are the ONNX file's
initializers, FLOPs are not counted, img/s is batch 1 through the same backend model. Writes ``<out-dir>/benchmark.md``
and ``benchmark.json`` as benchmark_coco.py does. Applies dsnet_mm's compatibility layer first
and prints what it patched. Needs ``.venv-deploy`` (``bash tools/deploy/setup_deploy_env.sh``).
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys
import warnings


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n', 2)[2])
    p.add_argument('deploy_cfg', help='the deploy config the model was exported with')
    p.add_argument('model_cfg', help='the model config (its test_dataloader / test_evaluator)')
    p.add_argument('onnx', help='the exported end2end.onnx')
    p.add_argument('--batch-size', type=int, default=1, help='test batch size (default 1)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--out-dir', default='work_dirs/deploy_eval')
    p.add_argument('--speed-images', type=int, default=50,
                   help='images timed for inference speed (0: skip)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings of the model config, e.g. '
                        'test_dataloader.dataset.data_root=data/shapes/')
    return p.parse_args(argv)


def onnx_params(path):
    import numpy as np
    import onnx
    model = onnx.load(path, load_external_data=False)
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def evaluate(deploy_cfg_path, model_cfg_path, onnx_path, out_dir='work_dirs/deploy_eval',
             batch_size=1, speed_images=50, device='cpu', cfg_options=None):
    """mmdeploy's test flow on the model config's test set; return a benchmark_coco-style row."""
    from dsnet_mm.deploy import apply_compat
    for line in apply_compat():
        print(f'[compat] patched {line}', flush=True)
    import torch

    import dsnet_mm  # noqa: F401  (registers DSNet / DSFPN)
    from dsnet_mm.apis import BenchmarkError, check_dataset, coco_ap_columns, measure_speed
    from mmdeploy.apis import build_task_processor
    from mmdeploy.utils import load_config

    if not osp.isfile(onnx_path):
        raise BenchmarkError(f'ONNX model not found: {onnx_path!r} (tools/deploy/export_onnx.py '
                             'writes it)')
    deploy_cfg, model_cfg = load_config(deploy_cfg_path, model_cfg_path)
    if cfg_options:
        model_cfg.merge_from_dict(cfg_options)
    check_dataset(model_cfg, model_cfg_path)
    name = osp.splitext(osp.basename(model_cfg_path))[0]
    work_dir = osp.join(out_dir, name)
    model_cfg.work_dir = work_dir
    model_cfg.get('default_hooks', {}).pop('visualization', None)

    task_processor = build_task_processor(model_cfg, deploy_cfg, device)
    model = task_processor.build_backend_model([onnx_path],
                                               task_processor.update_data_preprocessor)
    dataloader_cfg = copy.deepcopy(model_cfg.test_dataloader)
    dataloader_cfg['batch_size'] = batch_size
    dataloader = task_processor.build_dataloader(dataloader_cfg)
    runner = task_processor.build_test_runner(model, work_dir, dataloader=dataloader)
    metrics = runner.test()

    speed = None
    if speed_images > 0:
        one = task_processor.build_dataloader(dict(copy.deepcopy(model_cfg.test_dataloader),
                                                   batch_size=1, num_workers=0,
                                                   persistent_workers=False))
        speed = measure_speed(model, one, speed_images)
    row = dict(config=model_cfg_path, checkpoint=onnx_path, deploy_config=deploy_cfg_path,
               params_M=onnx_params(onnx_path) / 1e6, flops_G=None, flops_input_hw=None,
               images_per_s=speed, device=f'{device}, onnxruntime',
               torch_threads=torch.get_num_threads())
    row.update(coco_ap_columns(metrics))
    return row


def main(argv=None):
    warnings.filterwarnings('ignore', category=UserWarning)
    args = parse_args(argv)
    from dsnet_mm.deploy import apply_compat
    for line in apply_compat():   # before anything imports mmdeploy
        print(f'[compat] patched {line}', flush=True)
    from dsnet_mm.apis import BenchmarkError, markdown
    os.makedirs(args.out_dir, exist_ok=True)
    print(f'[eval-onnx] {args.onnx} ({args.model_cfg}, {args.deploy_cfg})', flush=True)
    try:
        row = evaluate(args.deploy_cfg, args.model_cfg, args.onnx, args.out_dir, args.batch_size,
                       args.speed_images, args.device, args.cfg_options)
    except BenchmarkError as e:
        print(f'[eval-onnx] ERROR: {e}', file=sys.stderr, flush=True)
        return 1
    md = markdown([row])
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(dict(results=[row], failures=[]), f, indent=2)
    print('\n' + md)
    print(f'[eval-onnx] wrote {osp.join(args.out_dir, "benchmark.md")} and benchmark.json')
    return 0


if __name__ == '__main__':
    sys.exit(main())
