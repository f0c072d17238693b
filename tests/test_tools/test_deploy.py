"""Whole-detector deployment: mmdeploy -> ONNX (opset 16) -> ONNX Runtime, on CPU.

The models are the repository's own configs (RetinaNet and Mask R-CNN with DS-Net-T and FPN, Mask
R-CNN with DS-Net-T and DSFPN) made tiny for CPU time (3 classes, few proposals, small images) with
random weights. Each is exported as ``tools/deploy/export_onnx.py`` exports (mmdeploy's
``torch2onnx``), run in stock ONNX Runtime (no mmdeploy custom-op library) and compared with
mmdeploy's PyTorch model (the same model rewritten by mmdeploy, run in PyTorch): boxes, scores,
labels and masks agree within 1e-4 at the traced size and at an odd one (and at batch 2 for
RetinaNet). Exact equality is with mmdeploy's PyTorch model, not with mmdet's own ``predict``:
mmdeploy's post-processing differs (docs/deployment.md).

These tests need the deployment environment, where mmdeploy is installed (it pins protobuf 3.20.2,
which conflicts with the main environment):

    bash tools/deploy/setup_deploy_env.sh
    .venv-deploy/bin/python -m pytest tests/test_tools/test_deploy.py

In ``.venv`` only the tests that need no mmdeploy run (deploy configs, compatibility layer); the
others are skipped with that hint. CI runs them through tools/deploy/ci_deploy.sh.
"""
import glob
import importlib.util
import os.path as osp
import sys
import textwrap

import numpy as np
import pytest
import torch

from dsnet_mm.deploy.pytorch_model import random_detector_weights_
from helpers import ROOT, run

HAVE_MMDEPLOY = importlib.util.find_spec('mmdeploy') is not None
HOW_TO = ('needs the deployment environment (mmdeploy is not installed in this one): run '
          "'bash tools/deploy/setup_deploy_env.sh', then "
          "'.venv-deploy/bin/python -m pytest tests/test_tools/test_deploy.py'")
needs_mmdeploy = pytest.mark.skipif(not HAVE_MMDEPLOY, reason=HOW_TO)

DEPLOY_DIR = osp.join(ROOT, 'configs', 'deploy')
DET_CFG = osp.join(DEPLOY_DIR, 'detection_onnxruntime_dynamic.py')
SEG_CFG = osp.join(DEPLOY_DIR, 'instance-seg_onnxruntime_dynamic.py')
MIN_ROIALIGN_OPSET = 16
TOL = 1e-4

EXPORT_HW = (128, 160)   # the traced size (test pipeline: resize into 160 x 128, pad to 32)
ODD_HW = (97, 131)       # an odd size the traced graph never saw


# ------------------------------------------------------------------ deploy configs (no mmdeploy)
def _deploy_configs():
    return sorted(glob.glob(osp.join(DEPLOY_DIR, '*.py')))


def test_deploy_configs_exist():
    names = {osp.basename(p) for p in _deploy_configs()}
    assert {'detection_onnxruntime_dynamic.py', 'instance-seg_onnxruntime_dynamic.py'} <= names


@pytest.mark.parametrize('path', _deploy_configs(), ids=osp.basename)
def test_roialign_deploy_configs_keep_opset_16(path):
    """Every config here serves models with RoIAlign (Faster / Mask / Cascade R-CNN): below opset
    16 ONNX's RoiAlign has no half_pixel mode and mmdeploy's workaround pools small RoIs wrongly
    (the behaviour itself: test_roialign_opset_16_matches_mmcv_and_11_does_not)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    assert cfg.onnx_config.opset_version >= MIN_ROIALIGN_OPSET, (
        f'{osp.basename(path)}: opset {cfg.onnx_config.opset_version} < {MIN_ROIALIGN_OPSET}: '
        'ONNX RoiAlign before opset 16 differs from mmcv RoIAlign(aligned=True)')
    assert cfg.backend_config.type == 'onnxruntime'
    assert cfg.codebase_config.type == 'mmdet'
    axes = cfg.onnx_config.dynamic_axes
    assert axes['input'] == {0: 'batch', 2: 'height', 3: 'width'}
    for name in cfg.onnx_config.output_names:
        assert axes[name][0] == 'batch' and axes[name][1] == 'num_dets', name


def test_instance_seg_config_outputs_masks():
    from mmengine.config import Config
    cfg = Config.fromfile(SEG_CFG)
    assert cfg.onnx_config.output_names == ['dets', 'labels', 'masks']
    assert Config.fromfile(DET_CFG).onnx_config.output_names == ['dets', 'labels']


# ------------------------------------------------------------------ compatibility layer (torch)
def test_compat_layer_patches_export_and_cast_long():
    """In a fresh interpreter: what apply_compat patches, that it is idempotent, that a call
    without dynamo= gets dynamo=False and that an explicit dynamo= is passed on unchanged."""
    code = textwrap.dedent('''
        import torch, torch.onnx.symbolic_opset9 as s9
        seen = []
        torch.onnx.export = lambda *a, **k: seen.append(k.get('dynamo', 'unset'))   # a recorder
        from dsnet_mm.deploy import compat
        lines = compat.apply_compat()
        assert len(lines) == 2, lines
        assert compat.apply_compat() == [] and len(compat.applied()) == 2
        assert callable(s9._cast_Long)
        torch.onnx.export(None, ())
        torch.onnx.export(None, (), dynamo=True)
        torch.onnx.export(None, (), dynamo=False)
        assert seen == [False, True, False], seen
        print(*lines, sep='\\n')
    ''')
    out = run([sys.executable, '-c', code], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'dynamo=False' in out.stdout and '_cast_Long' in out.stdout


def test_cast_long_symbolic_casts_to_int64():
    """The restored helper, used by a custom symbolic the way mmdeploy's RoIAlign uses it."""
    pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    code = textwrap.dedent('''
        import io, sys, numpy as np, torch, onnx, onnxruntime as ort
        from dsnet_mm.deploy import apply_compat
        apply_compat()
        from torch.onnx.symbolic_opset9 import _cast_Long

        class ToLong(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.long()
            @staticmethod
            def symbolic(g, x):
                return _cast_Long(g, x, False)

        class M(torch.nn.Module):
            def forward(self, x):
                return ToLong.apply(x)

        f = io.BytesIO()
        torch.onnx.export(M(), (torch.tensor([1.7, 2.2]),), f, opset_version=16)
        m = onnx.load_from_string(f.getvalue())
        assert [n.op_type for n in m.graph.node] == ['Cast'], [n.op_type for n in m.graph.node]
        s = ort.InferenceSession(f.getvalue(), providers=['CPUExecutionProvider'])
        y = s.run(None, {s.get_inputs()[0].name: np.array([3.9, -1.2], np.float32)})[0]
        assert y.dtype == np.int64 and y.tolist() == [3, -1], y
        print('OK')
    ''')
    out = run([sys.executable, '-c', code], timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


# ------------------------------------------------------------------ RoIAlign: why opset 16
class _RoIAlignModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from mmcv.ops import RoIAlign
        self.op = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)

    def forward(self, feat, rois):
        return self.op(feat, rois)


def _export_roialign(opset, tmp_path):
    """mmcv RoIAlign through mmdeploy's export (its RoIAlign symbolic for ONNX Runtime)."""
    from dsnet_mm.deploy import apply_compat
    apply_compat()
    from mmdeploy.apis.onnx import export
    from mmengine.config import Config
    cfg = Config.fromfile(SEG_CFG)
    cfg.onnx_config.opset_version = opset
    feat = torch.randn(2, 4, 16, 16)
    rois = torch.tensor([[0., 4., 4., 30., 30.], [1., 8., 4., 20., 30.]])
    prefix = str(tmp_path / f'roialign_{opset}')
    export(_RoIAlignModel().eval(), (feat, rois), prefix, backend='onnxruntime',
           context_info=dict(deploy_cfg=cfg), input_names=['feat', 'rois'], output_names=['out'],
           opset_version=opset, dynamic_axes={'feat': {0: 'batch'}, 'rois': {0: 'n'}})
    return prefix + '.onnx'


@needs_mmdeploy
def test_roialign_opset_16_matches_mmcv_and_11_does_not(tmp_path):
    """Small RoIs (under one feature cell at stride 4) are where opset < 16 goes wrong: ONNX
    RoiAlign-10 clamps each RoI to at least 1 x 1 cells, mmcv's aligned=True does not."""
    import onnxruntime as ort
    model = _RoIAlignModel().eval()
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 4, 16, 16, generator=g)
    rois = torch.tensor([[0., 10., 12., 12., 13.],     # 2 x 1 px: well under one cell (4 px)
                         [1., 20., 20., 22.5, 21.],
                         [0., 3., 5., 40., 33.],       # a large one: fine at any opset
                         [1., 30.2, 8.7, 31.1, 9.9]])
    with torch.no_grad():
        want = model(feat, rois).numpy()
    results = {}
    for opset in (11, MIN_ROIALIGN_OPSET):
        sess = ort.InferenceSession(_export_roialign(opset, tmp_path),
                                    providers=['CPUExecutionProvider'])
        results[opset] = sess.run(None, {'feat': feat.numpy(), 'rois': rois.numpy()})[0]
    np.testing.assert_allclose(results[MIN_ROIALIGN_OPSET], want, rtol=TOL, atol=TOL)
    small = [0, 1, 3]
    assert not np.allclose(results[11][small], want[small], atol=1e-3), (
        'opset 11 now matches mmcv for sub-cell RoIs: the reason for opset 16 is gone?')
    np.testing.assert_allclose(results[11][2], want[2], rtol=TOL, atol=TOL)


# ------------------------------------------------------------------ whole detectors
MODELS = {
    # name: (model config, deploy config)
    'retinanet_dsnet_t_fpn': ('configs/retinanet_dsnet_t_fpn_1x_coco.py', DET_CFG),
    'mask_rcnn_dsnet_t_fpn': ('configs/mask_rcnn_dsnet_t_fpn_1x_coco.py', SEG_CFG),
    'mask_rcnn_dsnet_t_dsfpn': ('configs/mask_rcnn_dsnet_t_dsfpn_1x_coco.py', SEG_CFG),
}
NUM_CLASSES = 3


def tiny_model_config(path):
    """The repository's config, tiny: 3 classes, few proposals and detections, small test images,
    no ImageNet checkpoint. Backbone, neck and head types are unchanged."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, path))
    m = cfg.model
    m.backbone.init_cfg = None
    m.backbone.drop_path_rate = 0.0
    if m.type == 'RetinaNet':
        m.bbox_head.num_classes = NUM_CLASSES
        m.test_cfg.update(nms_pre=200, max_per_img=30, score_thr=0.05)
    else:
        m.roi_head.bbox_head.num_classes = NUM_CLASSES
        m.roi_head.mask_head.num_classes = NUM_CLASSES
        m.test_cfg.rpn.update(nms_pre=200, max_per_img=40)
        m.test_cfg.rcnn.update(max_per_img=15, score_thr=0.05)
    pipeline = cfg.test_dataloader.dataset.pipeline
    for t in pipeline:
        if t['type'] == 'Resize':
            t['scale'] = (EXPORT_HW[1], EXPORT_HW[0])
    cfg.test_pipeline = pipeline
    return cfg


def mmdeploy_pytorch_outputs(model, deploy_cfg, x):
    """mmdeploy's PyTorch model (dsnet_mm/deploy/pytorch_model.py): the detector patched and run under
    mmdeploy's rewriter context, exactly what torch2onnx traces, executed in PyTorch."""
    from dsnet_mm.deploy.pytorch_model import mmdeploy_pytorch_model
    with mmdeploy_pytorch_model(model, deploy_cfg) as run:
        return [o.numpy() for o in run(x)]


@pytest.fixture(scope='module', params=list(MODELS), ids=list(MODELS))
def exported(request, tmp_path_factory):
    """(name, model, deploy config, ONNX Runtime session, onnx path), exported once per model."""
    if not HAVE_MMDEPLOY:
        pytest.skip(HOW_TO)
    import onnxruntime as ort
    from dsnet_mm.deploy import export_onnx
    from mmdeploy.utils import load_config
    from mmengine.registry import init_default_scope

    import dsnet_mm  # noqa: F401
    from mmdet.registry import MODELS as MMDET_MODELS
    name = request.param
    model_cfg_path, deploy_cfg_path = MODELS[name]
    cfg = tiny_model_config(model_cfg_path)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = random_detector_weights_(MMDET_MODELS.build(cfg.model), probe_hw=EXPORT_HW).eval()
    work = tmp_path_factory.mktemp(name)
    ckpt = str(work / 'random.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    path = export_onnx(deploy_cfg_path, cfg, ckpt, work_dir=str(work), shape=(200, 250), quiet=True)
    deploy_cfg = load_config(deploy_cfg_path)[0]
    sess = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    return name, model, deploy_cfg, sess, path


def match_detections(got, want, tol=TOL):
    """Pair ONNX Runtime's detections with PyTorch's, image by image: same label, score within
    ``tol`` and boxes within ``tol`` (relative, as :func:`numpy.allclose`). Only the order of
    detections whose scores tie within ``tol`` may differ (their order is not defined: the last
    bits of the scores decide it). Returns, per image, the PyTorch index of each ONNX Runtime
    detection; raises AssertionError naming the first detection without a partner."""
    (dets, labels), (dets_pt, labels_pt) = got[:2], want[:2]
    order = []
    for b in range(len(dets)):
        free = list(range(len(dets_pt[b])))
        perm = []
        for i in range(len(dets[b])):
            cands = [j for j in free if labels_pt[b, j] == labels[b, i]
                     and abs(dets_pt[b, j, 4] - dets[b, i, 4]) <= tol
                     and np.allclose(dets[b, i, :4], dets_pt[b, j, :4], rtol=tol, atol=tol)]
            assert cands, (f'image {b}, detection {i} (label {labels[b, i]}, {dets[b, i]}) has '
                           f'no PyTorch counterpart; PyTorch has {dets_pt[b, i]} '
                           f'(label {labels_pt[b, i]}) there')
            j = min(cands, key=lambda j: abs(j - i))   # the nearest in rank among the ties
            free.remove(j)
            perm.append(j)
        order.append(perm)
    return order


def _compare(got, want, tag):
    """Boxes within 1e-4 relative (pixel coordinates: 1e-4 of the coordinate, plus 1e-4 px),
    scores and mask probabilities within 1e-4 absolute, labels equal; detections paired by
    :func:`match_detections` (same order except among tied scores)."""
    names = ['dets', 'labels', 'masks'][:len(want)]
    assert len(got) == len(want), tag
    for n, a, b in zip(names, got, want):
        assert a.shape == b.shape, f'{tag} {n}: ONNX Runtime {a.shape} vs PyTorch {b.shape}'
    order = match_detections(got, want)
    if len(want) == 3:
        for b, perm in enumerate(order):
            np.testing.assert_allclose(got[2][b], want[2][b][perm], rtol=0, atol=TOL,
                                       err_msg=f'{tag} masks of image {b}')
    return order


@needs_mmdeploy
@pytest.mark.parametrize('hw', [EXPORT_HW, ODD_HW], ids=lambda hw: f'{hw[0]}x{hw[1]}')
def test_onnxruntime_equals_mmdeploy_pytorch(exported, hw):
    name, model, deploy_cfg, sess, _ = exported
    batch = 2 if name.startswith('retinanet') and hw == ODD_HW else 1   # dynamic batch too
    g = torch.Generator().manual_seed(hw[0])
    x = torch.randn(batch, 3, *hw, generator=g)
    want = mmdeploy_pytorch_outputs(model, deploy_cfg, x)
    got = sess.run(None, {'input': x.numpy()})
    n = want[0].shape[1]
    assert n > 0, f'{name} at {hw}: no detections, the comparison would be empty'
    order = _compare(got, want, f'{name} {tuple(x.shape)}')
    moved = sum(i != j for perm in order for i, j in enumerate(perm))
    assert moved <= 0.2 * n * len(x), f'{moved} of {n * len(x)} detections in another order'
    dets = got[0]
    assert np.isfinite(dets).all() and (dets[..., 4] >= 0.05 - 1e-6).all()
    assert (dets[..., 2] <= hw[1] + 1e-3).all() and (dets[..., 3] <= hw[0] + 1e-3).all()


@needs_mmdeploy
def test_exported_graph_uses_opset_16_roialign(exported):
    import onnx
    name, _, _, _, path = exported
    m = onnx.load(path, load_external_data=False)
    opset = {o.domain: o.version for o in m.opset_import}['']
    assert opset >= MIN_ROIALIGN_OPSET, f'{name}: exported with opset {opset}'
    roi = [n for n in m.graph.node if n.op_type == 'RoiAlign']
    custom = [n for n in m.graph.node if n.domain not in ('', 'ai.onnx')]
    assert not custom, f'{name}: custom ops {[n.op_type for n in custom]} need mmdeploy\'s library'
    if name.startswith('mask_rcnn'):
        assert roi, f'{name}: no RoiAlign node'
        for n in roi:
            attrs = {a.name: a for a in n.attribute}
            assert attrs['coordinate_transformation_mode'].s == b'half_pixel'
    else:
        assert not roi
