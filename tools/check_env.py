"""Prove that the installed OpenMMLab stack (upstream or OneDL) works, part by part.

    python tools/check_env.py                 # check the stack this python has
    python tools/check_env.py --expect onedl  # ... and fail unless it is the OneDL stack
    python tools/check_env.py --stack         # print which stack is installed (upstream/onedl/none/mixed)
    python tools/check_env.py --mim-name mmdet   # how `mim train` spells a codebase on this stack

The stack is recognised by its mmengine distribution; its versions are checked against its pins in
``requirements/stacks/<stack>.txt`` (the only place they are written). Each check imports a part
*and runs it on a tensor* (on the GPU too when one is visible); a failure names the part, the error
and the fix, and the script exits 1. Used at the end of ``tools/setup_env.sh`` and by the tests.
"""
import argparse
import importlib
import importlib.metadata as md
import os.path as osp
import re
import shutil
import subprocess
import sys
import traceback
from functools import partial

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# What differs between the stacks besides the versions: the distribution that ships each import
# name, the venv tools/setup_env.sh makes, and the name `mim train` accepts for each codebase
# (onedl-mim cannot resolve `mmdet`: it matches both onedl-mmdetection and mmdet3d).
STACKS = {
    'upstream': dict(
        setup='bash tools/setup_env.sh',
        dists=dict(mmcv='mmcv', mmengine='mmengine', mmdet='mmdet', mmseg='mmsegmentation',
                   mmpretrain='mmpretrain', mim='openmim'),
        mim_names=dict(mmdet='mmdet', mmseg='mmseg', mmpretrain='mmpretrain')),
    'onedl': dict(
        setup='STACK=onedl bash tools/setup_env.sh',
        dists=dict(mmcv='onedl-mmcv', mmengine='onedl-mmengine', mmdet='onedl-mmdetection',
                   mmseg='onedl-mmsegmentation', mmpretrain='onedl-mmpretrain', mim='onedl-mim'),
        mim_names=dict(mmdet='mmdetection', mmseg='mmseg', mmpretrain='mmpretrain')),
}


def pins_path(stack):
    return osp.join(ROOT, 'requirements', 'stacks', f'{stack}.txt')


def read_pins(stack):
    """``{distribution: requirement line}`` from the stack's pins file."""
    pins = {}
    with open(pins_path(stack)) as f:
        for line in f:
            line = line.split('#')[0].strip()
            m = re.match(r'([A-Za-z0-9_.-]+)\s*([=<>!~].*)', line)
            if m:
                pins[m.group(1).lower()] = m.group(1) + m.group(2).replace(' ', '')
    return pins


def _installed(dist):
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def installed_stack():
    """'upstream', 'onedl', 'none', or 'mixed' (both mmengines: they share the import name)."""
    have = [name for name, s in STACKS.items() if _installed(s['dists']['mmengine'])]
    return have[0] if len(have) == 1 else ('mixed' if have else 'none')


STACK = installed_stack()
PINS = read_pins(STACK) if STACK in STACKS else {}
SETUP = STACKS.get(STACK, STACKS['upstream'])['setup']
REINSTALL = f'FORCE_REINSTALL=1 {SETUP}'


def dist(module):
    return STACKS[STACK]['dists'][module]


def pin(name):
    """The pinned requirement of a distribution (by name) or of an import name's distribution."""
    name = STACKS[STACK]['dists'].get(name, name) if STACK in STACKS else name
    return PINS.get(name.lower(), name)


def check_pin(name):
    """The installed version of a pinned distribution, or an AssertionError naming the pin."""
    from packaging.requirements import Requirement
    req = Requirement(pin(name))
    have = _installed(req.name)
    assert have, f'{req.name} is not installed ({osp.relpath(pins_path(STACK), ROOT)}: {req})'
    assert req.specifier.contains(have, prereleases=True), (
        f'{req.name} {have} is installed, the {STACK} stack pins {req} '
        f'({osp.relpath(pins_path(STACK), ROOT)})')
    return have


def check_stack():
    assert STACK in STACKS, (
        'both mmengine and onedl-mmengine are installed: the stacks share import names and cannot '
        'share an environment' if STACK == 'mixed' else 'no mmengine / onedl-mmengine is installed')
    return f'{STACK} ({osp.relpath(pins_path(STACK), ROOT)})'


def check_torch():
    import torch
    want = re.sub(r'^[\w.-]+[=<>!~]+', '', pin('torch'))
    assert torch.__version__.split('+')[0] == want, (
        f'torch {torch.__version__} is installed, the stack is pinned to {want}')
    assert '+cpu' not in torch.__version__, (
        'a local torch "+cpu" build is installed; torchvision only works with the index build '
        f'(pip install "{pin("torch")}")')
    return torch.__version__


def _driver_cuda():
    """The CUDA version the NVIDIA driver reports ('12.2'), or None without a driver: read by
    tools/torch_cuda.py, run rather than imported (no tool imports another; stdlib only, fast)."""
    out = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'torch_cuda.py'), 'driver'],
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip() or None


def check_device():
    """Where training runs; fails when an NVIDIA driver is there but torch cannot use it."""
    import torch
    if torch.cuda.is_available():
        return f'cuda ({torch.cuda.get_device_name(0)}, torch CUDA {torch.version.cuda})'
    driver = _driver_cuda()
    assert driver is None, (
        f'an NVIDIA driver is installed (nvidia-smi: CUDA {driver}) but torch {torch.__version__} '
        + (f'(built for CUDA {torch.version.cuda}) ' if torch.version.cuda else '(a CPU-only build) ')
        + 'cannot use it: training would run on the CPU')
    return 'cpu (no NVIDIA driver): training runs on the CPU'


def check_torchvision():
    import torch
    import torchvision
    from torchvision.ops import nms
    keep = nms(torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]]), torch.tensor([.9, .8]), .5)
    assert keep.tolist() == [0]
    return torchvision.__version__


def _run_mmcv_ops(device):
    import torch
    from mmcv.ops import RoIAlign, nms  # needs the compiled mmcv._ext
    feat = torch.arange(16., device=device).view(1, 1, 4, 4)
    rois = torch.tensor([[0., 0., 0., 3., 3.]], device=device)
    out = RoIAlign((2, 2), spatial_scale=1., sampling_ratio=1, aligned=False)(feat, rois)
    assert out.shape == (1, 1, 2, 2) and torch.isfinite(out).all()
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]], device=device)
    _, keep = nms(boxes, torch.tensor([.9, .8], device=device), .5)
    assert keep.tolist() == [0]


def check_mmcv():
    import mmcv
    version = check_pin('mmcv')
    assert mmcv.__version__ == version, f'import mmcv gives {mmcv.__version__}, {dist("mmcv")} is {version}'
    _run_mmcv_ops('cpu')
    return f'{dist("mmcv")} {mmcv.__version__}'


def check_mmcv_cuda():
    import torch
    if not torch.cuda.is_available():
        return 'not run: no GPU visible'
    try:
        _run_mmcv_ops('cuda')
    except Exception as e:
        raise RuntimeError(f'mmcv built without CUDA ops ({type(e).__name__}: {e})') from e
    return 'nms, RoIAlign on cuda'


def check_codebase(name, *imports):
    """Import the codebase and the parts dsnet_mm uses (``imports``), then check its pin."""
    module = importlib.import_module(name)
    for part in imports:
        importlib.import_module(part)
    check_pin(name)
    return f'{dist(name)} {module.__version__}'


def check_pycocotools():
    import numpy as np
    import pycocotools
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(np.ones((4, 4), dtype=np.uint8)))
    assert int(mask_utils.area(rle)) == 16
    return getattr(pycocotools, '__version__', 'ok')


def check_mim():
    check_pin('mim')
    exe = osp.join(osp.dirname(sys.executable), 'mim')
    if not osp.exists(exe):
        exe = shutil.which('mim')
    assert exe, 'the `mim` command is not installed'
    out = subprocess.run([exe, '--version'], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr.strip().splitlines()[-1] if out.stderr else 'mim failed'
    import warnings
    with warnings.catch_warnings():   # mim imports pkg_resources (deprecated) upstream
        warnings.simplefilter('ignore')
        from mim.utils import module_full_name
    name = STACKS[STACK]['mim_names']['mmdet']
    assert module_full_name(name), f'mim cannot resolve `mim train {name}`'
    return f'{dist("mim")} {out.stdout.strip().split()[-1]} (mim train {name} ...)'


def check_dsnet_mm():
    import dsnet_mm
    import dsnet_mm.utils.config_scopes  # noqa: F401  (as the ADE20K configs do)
    from dsnet_mm.registry import registered_scopes
    from mmengine.config.utils import MODULE2PACKAGE
    from mmengine.utils import get_installed_path
    scopes = registered_scopes()
    missing = {'mmdet', 'mmseg', 'mmpretrain'} - set(scopes)
    assert not missing, f'DSNet is not registered in {sorted(missing)}'
    # configs reach mmseg's bases as `mmseg::...`: the scope must lead to the installed package
    configs = osp.join(get_installed_path(MODULE2PACKAGE['mmseg']), '.mim', 'configs')
    assert osp.isdir(configs), f'mmseg:: resolves to {configs}, which does not exist'
    return f'{dsnet_mm.__version__} (mmseg:: -> {MODULE2PACKAGE["mmseg"]})'


def _fix_pip(module, extra=''):
    return lambda: f'pip install "{pin(module)}"{extra}'


# (name shown, check, how to fix: a string or a callable that builds it from the pins)
CHECKS = [
    ('stack', check_stack, lambda: f'one stack per environment: {SETUP} (or STACK=onedl ...) '
                                   'makes a fresh one'),
    ('torch', check_torch, lambda: f'pip install "{pin("torch")}" inside the venv, or {REINSTALL}'),
    ('device', check_device, lambda: 'python tools/torch_cuda.py verify names the torch build for '
                                     'this driver (or CPU_ONLY=1 to train on the CPU)'),
    ('torchvision', check_torchvision,
     lambda: f'{pin("torchvision")} needs the matching build of torch ("{pin("torch")}", not "+cpu")'),
    ('mmcv (with ops)', check_mmcv,
     lambda: f'{dist("mmcv")} must be {pin("mmcv")} built with ops against this torch: '
             f'pip uninstall {dist("mmcv")}, then {REINSTALL} (uses ../shared/wheels or builds with '
             'MMCV_WITH_OPS=1 --no-build-isolation)'),
    ('mmcv CUDA ops', check_mmcv_cuda,
     lambda: f'rebuild mmcv with its CUDA kernels where nvcc (the CUDA toolkit matching torch.version.cuda) '
             f'is installed: pip uninstall -y {dist("mmcv")}, then {REINSTALL} (FORCE_CUDA=1 is set '
             'when nvcc and nvidia-smi are found)'),
    ('mmengine', partial(check_codebase, 'mmengine'), _fix_pip('mmengine')),
    # mmdet.models imports mmcv.ops, mmseg.models needs ftfy and regex, mmpretrain.models imports
    # torchvision at module level
    ('mmdet.models', partial(check_codebase, 'mmdet', 'mmdet.models'),
     _fix_pip('mmdet', ' (needs mmcv with ops)')),
    ('mmseg.models', partial(check_codebase, 'mmseg', 'mmseg.models'), _fix_pip('mmseg', ' ftfy regex')),
    ('mmpretrain.models', partial(check_codebase, 'mmpretrain', 'mmpretrain.models'),
     _fix_pip('mmpretrain', ' (needs a working torchvision)')),
    ('pycocotools', check_pycocotools, 'pip install pycocotools'),
    ('mim', check_mim,
     lambda: f'pip install --no-deps "{pin("mim")}" && pip install -r requirements/mim.txt (with its '
             'dependencies mim pulls opendatalab, which downgrades setuptools)'),
    ('dsnet_mm', check_dsnet_mm, 'pip install --no-deps --no-build-isolation -e . (from the repository root)'),
]


def run_checks(checks, expect=None):
    """Run (name, check, fix) triples; print one line each; return 0 if all passed, else 1.
    ``expect``: the stack that must be installed (checked by the 'stack' entry)."""
    failed = []
    for name, fn, fix in checks:
        try:
            if STACK not in STACKS and name != 'stack':
                raise RuntimeError('no stack to check')
            info = fn()
            if name == 'stack' and expect and STACK != expect:
                raise AssertionError(f'the {STACK} stack is installed, expected {expect}')
            print(f'  ok    {name:<18} {info}')
        except BaseException as e:  # noqa: B902  (SystemExit/AssertionError from broken packages too)
            if isinstance(e, KeyboardInterrupt):
                raise
            last = traceback.format_exception_only(type(e), e)[-1].strip()
            print(f'  FAIL  {name:<18} {last}')
            print(f'        fix: {fix() if callable(fix) else fix}')
            failed.append(name)
            if name == 'stack':
                break
    if failed:
        print(f'\nBROKEN: {", ".join(failed)}', file=sys.stderr)
        return 1
    print('\nall checks passed')
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--stack', action='store_true', help='print the installed stack and exit')
    parser.add_argument('--mim-name', metavar='MODULE',
                        help='print how `mim train` names MODULE (mmdet, mmseg, mmpretrain) here')
    parser.add_argument('--expect', choices=sorted(STACKS), help='fail unless this stack is installed')
    args = parser.parse_args(argv)
    if args.stack:
        print(STACK)
        return 0
    if args.mim_name:
        if STACK not in STACKS:
            print(f'no single stack installed ({STACK})', file=sys.stderr)
            return 1
        print(STACKS[STACK]['mim_names'][args.mim_name])
        return 0
    return run_checks(CHECKS, args.expect)


if __name__ == '__main__':
    sys.exit(main())
