"""mmdeploy's PyTorch model: the detector as mmdeploy rewrites it for export, run in PyTorch.

    from dsnet_mm.deploy.pytorch_model import mmdeploy_pytorch_model
    with mmdeploy_pytorch_model(model, deploy_cfg) as run:
        dets, labels, masks = run(images)     # the same outputs as end2end.onnx, from PyTorch

This is what ``mmdeploy.apis.torch2onnx`` traces (``patch_model`` + ``RewriterContext`` with the
deploy config's backend, IR and opset), executed instead of traced: what an ONNX Runtime result has
to equal (tests/test_tools/test_deploy.py, tools/deploy/benchmark_ort.py). mmdet's own
``model.predict`` is a different computation (mmdeploy's post-processing differs: docs/deployment.md). mmdeploy is imported when called, not when this module is imported; apply
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


def random_detector_weights_(model, seed=0, probe_hw=(128, 160)):
    """Random weights for a detector that detects: mmdeploy's and mmdet's heads start
    near-constant (every score at the prior: no detection over the threshold, or ties deciding
    the order), so the classifiers (``*cls*``) and box regressors (``*reg*``) are drawn again and
    scaled on a random probe image until the logits have std 1 (scores spread over (0, 1)) and the
    box deltas std 0.1 (boxes move but stay boxes); BatchNorm gets non-trivial statistics. For
    tests and latency measurements (tests/test_tools/test_deploy.py, tools/deploy/benchmark_ort.py)."""
    import torch
    g = torch.Generator().manual_seed(seed)
    layers = {}
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.SyncBatchNorm)):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.2)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            leaf = name.split('.')[-1]
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and (
                    'cls' in leaf or 'reg' in leaf):    # rpn_cls, retina_reg, fc_cls, ...
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g))
                mod.bias.zero_()
                layers[name] = (mod, 1.0 if 'cls' in leaf else 0.1)
    model.eval()
    x = torch.randn(1, 3, *probe_hw, generator=g)
    for _ in range(3):   # the R-CNN heads see the RPN's proposals: settle in a few rounds
        seen = {n: [] for n in layers}
        hooks = [m.register_forward_hook(lambda m, i, o, n=n: seen[n].append(o.flatten()))
                 for n, (m, _) in layers.items()]
        with torch.no_grad():
            model.predict(x, data_samples_for(x))
        for h in hooks:
            h.remove()
        with torch.no_grad():
            for n, (m, target) in layers.items():
                if seen[n]:
                    m.weight.mul_(target / torch.cat(seen[n]).std().clamp_min(1e-6))
    return model
