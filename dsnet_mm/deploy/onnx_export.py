"""Export a detector to ONNX with mmdeploy's ``torch2onnx`` (tools/deploy/export_onnx.py and
tools/deploy/benchmark_ort.py), dsnet_mm's compatibility layer applied first.

    from dsnet_mm.deploy.onnx_export import export_onnx
    path = export_onnx('configs/deploy/instance-seg_onnxruntime_dynamic.py', MODEL_CFG, CKPT)

mmdeploy is imported when called; this module needs torch alone to import.
"""
import os.path as osp
import warnings


def synthetic_image(h, w, seed=0):
    """A random uint8 (h, w, 3) image: enough to trace the graph."""
    import numpy as np
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def export_onnx(deploy_cfg, model_cfg, checkpoint=None, work_dir=None, img=None, shape=(480, 640),
                device='cpu', quiet=False):
    """Export with ``mmdeploy.apis.torch2onnx``; return the path of the ONNX file.

    ``deploy_cfg`` / ``model_cfg``: paths or ``Config`` objects; ``checkpoint``: None for random
    weights; ``img``: an image path or array (default: :func:`synthetic_image` of ``shape``)."""
    from .compat import apply_compat
    for line in apply_compat():
        print(f'[compat] patched {line}', flush=True)
    import dsnet_mm  # noqa: F401  (registers DSNet / DSFPN)
    from mmdeploy.apis import torch2onnx
    from mmdeploy.utils import get_onnx_config, load_config

    deploy, model = load_config(deploy_cfg, model_cfg)
    if work_dir is None:
        name = osp.splitext(osp.basename(model_cfg))[0] if isinstance(model_cfg, str) else 'model'
        work_dir = osp.join('work_dirs', 'deploy', name)
    save_file = get_onnx_config(deploy).get('save_file', 'end2end.onnx')
    if img is None:
        img = synthetic_image(*shape)
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {checkpoint!r}')
    if checkpoint is None and not quiet:
        print('[export] no checkpoint given: exporting random weights', flush=True)
    if checkpoint is not None:   # mmdeploy reads it with torch.load: a runner checkpoint needs
        from ..utils import allow_mmengine_checkpoints   # mmengine's classes allowed
        allow_mmengine_checkpoints()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # tracer warnings: expected for a traced export
        torch2onnx(img, work_dir, save_file, deploy_cfg=deploy, model_cfg=model,
                   model_checkpoint=checkpoint, device=device)
    path = osp.join(work_dir, save_file)
    if not osp.isfile(path):
        raise RuntimeError(f'mmdeploy did not write {path} (see the log above)')
    return path
