"""Export a detector (model config + checkpoint) to ``<work-dir>/end2end.onnx`` with mmdeploy.

    .venv-deploy/bin/python tools/deploy/export_onnx.py DEPLOY_CFG MODEL_CFG [CHECKPOINT] \
        [--work-dir work_dirs/deploy/NAME] [--img IMAGE | --shape H W] [--device cpu]

    # e.g. the quick-start model:
    .venv-deploy/bin/python tools/deploy/export_onnx.py \
        configs/deploy/instance-seg_onnxruntime_dynamic.py \
        configs/embedded/mask_rcnn_dsnet_t_fpn_shapes.py \
        work_dirs/mask_rcnn_dsnet_t_fpn_shapes/epoch_12.pth --work-dir work_dirs/deploy/shapes

This is mmdeploy's own ``mmdeploy.apis.torch2onnx`` (what mmdeploy's ``tools/deploy.py`` runs for
the ONNX step): it builds the model from the config, loads the checkpoint, runs one image through the
config's test pipeline and exports the rewritten model with the deploy config's opset and dynamic
axes (``dsnet_mm.deploy.export_onnx``). It starts by applying dsnet_mm's compatibility layer
(``dsnet_mm/deploy/compat.py``) and prints what it patched. Without a checkpoint the weights
are random (for trying the export only).

The image only traces the graph: with the dynamic deploy configs of configs/deploy/ the model takes
any batch, height and width afterwards. By default it is a synthetic image of --shape (default
480 x 640) that the test pipeline resizes like any input. Needs ``.venv-deploy``
(``bash tools/deploy/setup_deploy_env.sh``).
"""
import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n', 2)[2])
    p.add_argument('deploy_cfg', help='a deploy config, e.g. configs/deploy/'
                                      'instance-seg_onnxruntime_dynamic.py')
    p.add_argument('model_cfg', help='the model config the checkpoint was trained with')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='the trained checkpoint (omit: random weights)')
    p.add_argument('--work-dir', default=None,
                   help='where end2end.onnx goes (default: work_dirs/deploy/<model config name>)')
    p.add_argument('--img', default=None, help='an image to trace with (default: synthetic)')
    p.add_argument('--shape', type=int, nargs=2, default=(480, 640), metavar=('H', 'W'),
                   help='size of the synthetic image (before the test pipeline resizes it)')
    p.add_argument('--device', default='cpu', help="export device (default 'cpu')")
    return p.parse_args(argv)


def describe_onnx(path):
    """One line per input / output, the opsets and the RoiAlign nodes of an exported model."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    lines = ['opsets: ' + ', '.join(f'{o.domain or "ai.onnx"} {o.version}'
                                   for o in model.opset_import)]

    def dims(v):
        return 'x'.join(d.dim_param or str(d.dim_value) for d in v.type.tensor_type.shape.dim)
    for kind, vals in (('input', model.graph.input), ('output', model.graph.output)):
        for v in vals:
            lines.append(f'{kind} {v.name}: [{dims(v)}]')
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    if 'RoiAlign' in ops:
        modes = {a.s.decode() for n in model.graph.node if n.op_type == 'RoiAlign'
                 for a in n.attribute if a.name == 'coordinate_transformation_mode'}
        lines.append(f"RoiAlign nodes: {ops['RoiAlign']} "
                     f"(coordinate_transformation_mode: {', '.join(sorted(modes)) or 'n/a'})")
    lines.append(f'{len(model.graph.node)} nodes, {os.path.getsize(path) / 1e6:.1f} MB')
    return lines


def main(argv=None):
    args = parse_args(argv)
    from dsnet_mm.deploy import apply_compat, export_onnx
    for line in apply_compat():   # before anything imports mmdeploy
        print(f'[compat] patched {line}', flush=True)
    path = export_onnx(args.deploy_cfg, args.model_cfg, args.checkpoint, args.work_dir,
                       args.img, tuple(args.shape), args.device)
    print(f'[export] wrote {path}')
    for line in describe_onnx(path):
        print(f'[export]   {line}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
