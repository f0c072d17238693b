"""mmdeploy's PyTorch model: the detector as mmdeploy rewrites it for export, run in PyTorch.

    from dsnet_mm.deploy.reference import mmdeploy_pytorch_model
    with mmdeploy_pytorch_model(model, deploy_cfg) as run:
        dets, labels, masks = run(images)     # the same outputs as end2end.onnx, from PyTorch

This is what ``mmdeploy.apis.torch2onnx`` traces (``patch_model`` + ``RewriterContext`` with the
deploy config's backend, IR and opset), executed instead of traced: the reference an ONNX Runtime
result has to equal (tests/test_deploy.py, tools/deploy/benchmark_ort.py). mmdet's own
``model.predict`` is a different computation (mmdeploy's post-processing differs: README,
"Deployment"). mmdeploy is imported when called, not when this module is imported; apply
:func:`dsnet_mm.deploy.apply_compat` first.
"""
from contextlib import contextmanager


def data_samples_for(images):
    """One ``DetDataSample`` per image of an (N, 3, H, W) batch that is already the network input
    (normalised and padded): image, original and padded shapes all H x W, scale factor 1."""
    from mmdet.structures import DetDataSample
    h, w = images.shape[-2:]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1., 1.))
    return [DetDataSample(metainfo=meta) for _ in range(len(images))]


@contextmanager
def mmdeploy_pytorch_model(model, deploy_cfg):
    """Yield ``run(images) -> [dets, labels(, masks)]`` (tensors) computed by mmdeploy's rewritten
    model under its rewriter context, without gradients."""
    import torch
    from mmdeploy.codebase import import_codebase
    from mmdeploy.core import RewriterContext, patch_model
    from mmdeploy.utils import IR, get_backend, get_codebase, get_ir_config, load_config

    deploy_cfg = load_config(deploy_cfg)[0]
    import_codebase(get_codebase(deploy_cfg))   # registers mmdeploy's rewriters for mmdet
    backend = get_backend(deploy_cfg).value
    ir_cfg = get_ir_config(deploy_cfg)
    ir = IR.get(ir_cfg['type'])
    patched = patch_model(model, cfg=deploy_cfg, backend=backend, ir=ir)
    with RewriterContext(cfg=deploy_cfg, backend=backend, ir=ir,
                         opset=ir_cfg['opset_version']), torch.no_grad():
        yield lambda images: list(patched(images, data_samples_for(images), mode='predict'))
