"""Deployment paths of the backbone: ONNX export with dynamic H x W (checked with onnxruntime) and
torch.compile without graph breaks.

ONNX uses the legacy TorchScript exporter (``dynamo=False``): it traces, so the model computes the
global-stream grid (H // ratio) and the patch-embedding pad from the traced shape; an export made
at 224 x 224 must then be right at 256 x 320 (other global grid: 8 x 10 instead of 7 x 7) and at an
odd size that needs padding. (The torch.export-based exporter is not used here.)

The inductor backend of torch.compile takes minutes on a 2-core CPU, so the test compiles with
``backend='aot_eager'`` (dynamo capture with fullgraph=True + AOT autograd) and checks the output;
``fullgraph=True`` makes a graph break an error. Inductor itself: see docs/performance.md.
"""
import warnings

import numpy as np
import pytest
import torch

from dsnet_mm.models.backbones.dsnet import DSNet


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    m = DSNet('tiny', init_cfg=None).eval()
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
    return m


def test_onnx_export_is_dynamic_in_height_and_width(tiny, tmp_path):
    ort = pytest.importorskip('onnxruntime')
    pytest.importorskip('onnx')
    path = str(tmp_path / 'dsnet_t.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(tiny, (torch.randn(1, 3, 224, 224),), path, dynamo=False, opset_version=17,
                          input_names=['image'], output_names=['c2', 'c3', 'c4', 'c5'],
                          dynamic_axes={'image': {0: 'batch', 2: 'height', 3: 'width'}})
    assert tiny.stages[0][0].mixer.intra.fused_attn   # exporting leaves the model as it was
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    g = torch.Generator().manual_seed(3)
    for size in [(1, 3, 224, 224), (1, 3, 256, 320), (2, 3, 97, 131)]:
        x = torch.randn(*size, generator=g)
        with torch.no_grad():
            want = tiny(x)
        got = sess.run(None, {'image': x.numpy()})
        assert len(got) == 4
        for a, b in zip(got, want):
            assert a.shape == tuple(b.shape), (size, a.shape, b.shape)
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4, err_msg=str(size))


def test_torch_compile_dynamic_shapes_on_padded_sizes():
    """torch.compile(fullgraph=True, dynamic=True) on a batch and size that need padding
    (2 x 3 x 97 x 65): fullgraph makes any graph break an error, so one compile checks both that
    the backbone is a single graph and that it traces with symbolic sizes. torch 2.13's AOT
    autograd pass that turns float scalars into tensors (used by every backend, inductor too)
    cannot translate a modulo of a symbolic size ("TensorReferenceAnalysis has no attribute
    python_mod"): PatchEmbed computes its pad with a floor division instead. (The graph still
    specializes on whether a pad is needed, so a size without padding compiles again.) A small
    arch keeps the compile short; the modules are the same as in every variant."""
    torch.manual_seed(0)
    arch = dict(channels=[16, 32, 64, 64], depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1])
    model = DSNet(arch).eval()
    torch._dynamo.reset()
    compiled = torch.compile(model, dynamic=True, fullgraph=True, backend='aot_eager')
    x = torch.randn(2, 3, 97, 65)
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()
