"""Prove that the deployment environment (.venv-deploy) works, part by part.

    .venv-deploy/bin/python tools/deploy/check_deploy_env.py

Like tools/check_env.py (which tools/setup_env.sh has already run on the same environment for the
pinned stack), each check runs what it names: the pins of requirements/deploy.txt, dsnet_mm's
compatibility layer (applied, and what it patched), mmdeploy with its mmdet codebase, and a tiny
model (a conv and mmcv's RoIAlign, the op whose export needs both patches) exported through
mmdeploy with configs/deploy/instance-seg_onnxruntime_dynamic.py and run in ONNX Runtime, both
plain and through mmdeploy's ORTWrapper (which loads mmdeploy's custom-op library), compared
with PyTorch. Used at the end of tools/deploy/setup_deploy_env.sh. Exit status 1 if a check fails.
"""
import os
import os.path as osp
import sys
import tempfile
import traceback
import warnings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

REINSTALL = 'FORCE_REINSTALL=1 bash tools/deploy/setup_deploy_env.sh'
DEPLOY_CFG = osp.join(ROOT, 'configs', 'deploy', 'instance-seg_onnxruntime_dynamic.py')


def pinned():
    """{distribution: version} from requirements/deploy.txt ('name==version' lines)."""
    pins = {}
    for line in open(osp.join(ROOT, 'requirements', 'deploy.txt')):
        line = line.split('#')[0].strip()
        if '==' in line:
            name, version = line.split('==')
            pins[name.strip()] = version.strip()
    return pins


def pip_install(*names):
    """The fix line: `pip install` of these distributions at their requirements/deploy.txt pins."""
    return 'pip install ' + ' '.join(f'{name}=={pinned()[name]}' for name in names)


def check_pins():
    from importlib.metadata import PackageNotFoundError, version
    wrong = []
    for name, want in pinned().items():
        try:
            got = version(name)
        except PackageNotFoundError:
            got = 'missing'
        if got != want:
            wrong.append(f'{name} {got} (need {want})')
    assert not wrong, ', '.join(wrong)
    return ', '.join(f'{k} {v}' for k, v in pinned().items())


def check_compat():
    import torch
    from dsnet_mm.deploy import compat
    compat.apply_compat()
    assert getattr(torch.onnx.export, '_dsnet_mm_compat', False), 'torch.onnx.export not wrapped'
    import torch.onnx.symbolic_opset9 as opset9
    assert hasattr(opset9, '_cast_Long')
    lines = compat.applied()
    for line in lines:
        print(f'        patched {line}')
    return f'{len(lines)} patch(es) applied' if lines else 'nothing needed patching'


def check_mmdeploy():
    import mmdeploy
    from mmdeploy.apis import torch2onnx  # noqa: F401
    from mmdeploy.codebase import import_codebase
    from mmdeploy.utils import Codebase
    import_codebase(Codebase.MMDET)   # mmdeploy's mmdet rewriters (imports mmdet.models)
    return mmdeploy.__version__


def check_onnxruntime():
    import onnxruntime as ort
    providers = ort.get_available_providers()
    assert 'CPUExecutionProvider' in providers, providers
    return f'{ort.__version__} ({", ".join(providers)})'


def check_export_and_run():
    import numpy as np
    import onnxruntime as ort
    import torch
    from mmcv.ops import RoIAlign
    from mmdeploy.apis.onnx import export
    from mmdeploy.backend.onnxruntime import ORTWrapper
    from mmdeploy.utils import load_config

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)
            self.roi = RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=0, aligned=True)

        def forward(self, img, rois):
            return self.roi(self.conv(img), rois)

    torch.manual_seed(0)
    model = Tiny().eval()
    img = torch.randn(2, 3, 64, 80)
    rois = torch.tensor([[0., 3., 5., 40., 33.], [1., 10., 12., 12., 13.], [0., 50., 2., 79., 60.]])
    deploy_cfg = load_config(DEPLOY_CFG)[0]
    opset = deploy_cfg.onnx_config.opset_version
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter('ignore')
        prefix = osp.join(tmp, 'tiny')
        export(model, (img, rois), prefix, backend='onnxruntime',
               context_info=dict(deploy_cfg=deploy_cfg), input_names=['img', 'rois'],
               output_names=['out'], opset_version=opset,
               dynamic_axes={'img': {0: 'b', 2: 'h', 3: 'w'}, 'rois': {0: 'n'}})
        img2 = torch.randn(2, 3, 57, 91)   # another size: the export is dynamic
        with torch.no_grad():
            want = model(img2, rois).numpy()
        sess = ort.InferenceSession(prefix + '.onnx', providers=['CPUExecutionProvider'])
        got = sess.run(None, {'img': img2.numpy(), 'rois': rois.numpy()})[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        wrapped = ORTWrapper(prefix + '.onnx', 'cpu', ['out'])
        got2 = wrapped({'img': img2, 'rois': rois})['out'].numpy()
        np.testing.assert_allclose(got2, want, rtol=1e-4, atol=1e-4)
        size = os.path.getsize(prefix + '.onnx')
    return (f'conv + RoIAlign exported (opset {opset}, {size} bytes), ONNX Runtime and '
            'mmdeploy ORTWrapper == PyTorch at another size')


CHECKS = [
    ('deploy pins', check_pins, f'{REINSTALL} (installs requirements/deploy.txt)'),
    # the compatibility layer goes before anything imports mmdeploy
    ('compat layer', check_compat, 'dsnet_mm must be importable: pip install --no-deps -e .'),
    ('mmdeploy', check_mmdeploy, lambda: f'{pip_install("mmdeploy", "protobuf")}, or {REINSTALL}'),
    ('onnxruntime', check_onnxruntime, lambda: pip_install('onnxruntime', 'protobuf')),
    ('export + run', check_export_and_run,
     'see the error: a newer torch may need another compatibility patch in '
     'dsnet_mm/deploy/compat.py'),
]


def run_checks(checks):
    """Run (name, check, fix) triples as tools/check_env.py does: one line each, every check even
    after a failure; 0 if all passed, else 1."""
    failed = []
    for name, fn, fix in checks:
        try:
            print(f'  ok    {name:<18} {fn()}')
        except Exception as e:  # noqa: B902  (AssertionError, ImportError, RuntimeError, ...)
            print(f'  FAIL  {name:<18} {traceback.format_exception_only(type(e), e)[-1].strip()}')
            print(f'        fix: {fix() if callable(fix) else fix}')
            failed.append(name)
    if failed:
        print(f'\nBROKEN: {", ".join(failed)}', file=sys.stderr)
        return 1
    print('\nall checks passed')
    return 0


def main():
    warnings.filterwarnings('ignore', category=UserWarning)
    return run_checks(CHECKS)


if __name__ == '__main__':
    sys.exit(main())
