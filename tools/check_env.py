"""Prove that the pinned OpenMMLab stack works, part by part.

    python tools/check_env.py

Each check imports a part *and runs it on a tensor*; a failure names the part, the error and the
fix, and the script exits 1. Used at the end of ``tools/setup_env.sh`` and by the tests.
"""
import os
import shutil
import subprocess
import sys
import traceback

REINSTALL = 'FORCE_REINSTALL=1 bash tools/setup_env.sh'


def check_torch():
    import torch
    assert torch.__version__.split('+')[0] == '2.13.0', (
        f'torch {torch.__version__} is installed, the stack is pinned to 2.13.0')
    assert '+cpu' not in torch.__version__, (
        'a local torch "+cpu" build is installed; torchvision only works with the index build '
        '(pip install "torch===2.13.0")')
    return torch.__version__


def check_torchvision():
    import torch
    import torchvision
    from torchvision.ops import nms
    keep = nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]), torch.tensor([.9, .8]), .5)
    assert keep.tolist() == [0]
    return torchvision.__version__


def check_mmcv():
    import mmcv
    import torch
    assert mmcv.__version__ == '2.1.0', f'mmcv {mmcv.__version__} is installed, need 2.1.0'
    from mmcv.ops import RoIAlign, nms  # needs the compiled mmcv._ext
    feat = torch.arange(16.).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 3., 3.]])
    out = RoIAlign((2, 2), spatial_scale=1., sampling_ratio=1, aligned=False)(feat, rois)
    assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
    _, keep = nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]), torch.tensor([.9, .8]), .5)
    assert keep.tolist() == [0]
    return mmcv.__version__


def check_mmengine():
    import mmengine
    assert mmengine.__version__ == '0.10.7', f'mmengine {mmengine.__version__}, need 0.10.7'
    return mmengine.__version__


def check_mmdet():
    import mmdet
    import mmdet.models  # noqa: F401  (imports mmcv.ops)
    return mmdet.__version__


def check_mmseg():
    import mmseg
    import mmseg.models  # noqa: F401  (needs ftfy and regex)
    return mmseg.__version__


def check_mmpretrain():
    import mmpretrain
    import mmpretrain.models  # noqa: F401  (imports torchvision at module level)
    return mmpretrain.__version__


def check_pycocotools():
    import pycocotools
    from pycocotools import mask as mask_utils
    import numpy as np
    rle = mask_utils.encode(np.asfortranarray(np.ones((4, 4), dtype=np.uint8)))
    assert int(mask_utils.area(rle)) == 16
    return getattr(pycocotools, '__version__', 'ok')


def check_mim():
    exe = os.path.join(os.path.dirname(sys.executable), 'mim')
    if not os.path.exists(exe):
        exe = shutil.which('mim')
    assert exe, 'the `mim` command is not installed'
    out = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1] if out.stderr else 'mim failed'
    return out.stdout.strip().split()[-1]


def check_dsnet_mm():
    import dsnet_mm
    from dsnet_mm.registry import registered_scopes
    scopes = registered_scopes()
    missing = {'mmdet', 'mmseg', 'mmpretrain'} - set(scopes)
    assert not missing, f'DSNet is not registered in {sorted(missing)}'
    return dsnet_mm.__version__


# (name shown, check, how to fix)
CHECKS = [
    ('torch', check_torch, f'pip install "torch===2.13.0" inside the venv, or {REINSTALL}'),
    ('torchvision', check_torchvision,
     'torchvision 0.28.0 needs the index build of torch 2.13.0 ("torch===2.13.0", not "+cpu")'),
    ('mmcv (with ops)', check_mmcv,
     'mmcv must be 2.1.0 built with ops against this torch: pip uninstall mmcv, then '
     f'{REINSTALL} (uses ../shared/wheels or builds with MMCV_WITH_OPS=1 --no-build-isolation)'),
    ('mmengine', check_mmengine, 'pip install mmengine==0.10.7'),
    ('mmdet.models', check_mmdet, 'pip install mmdet==3.3.0 (needs mmcv<2.2 with ops)'),
    ('mmseg.models', check_mmseg, 'pip install mmsegmentation==1.2.2 ftfy regex'),
    ('mmpretrain.models', check_mmpretrain, 'pip install mmpretrain==1.2.0 (needs a working torchvision)'),
    ('pycocotools', check_pycocotools, 'pip install pycocotools'),
    ('mim', check_mim,
     'pip install --no-deps openmim==0.3.9 && pip install -r requirements/mim.txt '
     '("pip install openmim" alone pulls opendatalab, which downgrades setuptools)'),
    ('dsnet_mm', check_dsnet_mm, 'pip install --no-deps --no-build-isolation -e . (from the repository root)'),
]


def run_checks(checks):
    """Run (name, check, fix) triples; print one line each; return 0 if all passed, else 1."""
    failed = []
    for name, fn, fix in checks:
        try:
            info = fn()
            print(f'  ok    {name:<18} {info}')
        except BaseException as e:  # noqa: B902  (SystemExit/AssertionError from broken packages too)
            if isinstance(e, KeyboardInterrupt):
                raise
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            print(f'  FAIL  {name:<18} {last}')
            print(f'        fix: {fix}')
            failed.append(name)
    if failed:
        print(f'\nBROKEN: {", ".join(failed)}', file=sys.stderr)
        return 1
    print('\nall checks passed')
    return 0


def main():
    return run_checks(CHECKS)


if __name__ == '__main__':
    sys.exit(main())
