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
axes. Before that it applies dsnet_mm's compatibility layer (``dsnet_mm/deploy/compat.py``) and
prints what it patched. Without a checkpoint the weights are random (for trying the export only).

The image only traces the graph: with the dynamic deploy configs of configs/deploy/ the model takes
any batch, height and width afterwards. By default it is a synthetic image of --shape (default
480 x 640) that the test pipeline resizes like any input. Needs ``.venv-deploy``
(``bash tools/deploy/setup_deploy_env.sh``).
"""
import argparse
import os
import os.path as osp
import sys
import warnings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)


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


def synthetic_image(h, w, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


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


def export(deploy_cfg, model_cfg, checkpoint=None, work_dir=None, img=None, shape=(480, 640),
           device='cpu', quiet=False):
    """Export with ``mmdeploy.apis.torch2onnx``; return the path of the ONNX file."""
    from dsnet_mm.deploy import apply_compat
    for line in apply_compat():
        print(f'[compat] patched {line}', flush=True)
    import dsnet_mm  # noqa: F401  (registers DSNet / DSFPN)
    from mmdeploy.apis import torch2onnx
    from mmdeploy.utils import get_onnx_config, load_config

    deploy, model = load_config(deploy_cfg, model_cfg)
    if work_dir is None:
        work_dir = osp.join('work_dirs', 'deploy', osp.splitext(osp.basename(model_cfg))[0])
    save_file = get_onnx_config(deploy).get('save_file', 'end2end.onnx')
    if img is None:
        img = synthetic_image(*shape)
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint!r}')
    if checkpoint is None and not quiet:
        print('[export] no checkpoint given: exporting random weights', flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # tracer warnings: expected for a traced export
        torch2onnx(img, work_dir, save_file, deploy_cfg=deploy, model_cfg=model,
                   model_checkpoint=checkpoint, device=device)
    path = osp.join(work_dir, save_file)
    if not osp.isfile(path):
        raise RuntimeError(f'mmdeploy did not write {path} (see the log above)')
    return path


def main(argv=None):
    args = parse_args(argv)
    path = export(args.deploy_cfg, args.model_cfg, args.checkpoint, args.work_dir, args.img,
                  tuple(args.shape), args.device)
    print(f'[export] wrote {path}')
    for line in describe_onnx(path):
        print(f'[export]   {line}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
