"""The environment set-up and its check: from a fresh machine to a green test run
(docs/installation.md): tools/check_env.py, tools/setup_env.sh, the pins of the two stacks,
tools/torch_cuda.py and tools/idle_cores.py."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT, run


def _broken(tmp_path, package, error):
    """An environment where ``package`` shadows the real one and raises ``error`` on import,
    as a half-installed or mismatched package does."""
    (tmp_path / package).mkdir()
    (tmp_path / package / '__init__.py').write_text(f'raise {error}\n')
    env = dict(os.environ)
    env['PYTHONPATH'] = str(tmp_path) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def test_check_env_passes(repo_root, venv_python):
    import torch
    out = run([venv_python, 'tools/check_env.py'], repo_root)
    assert out.returncode == 0, out.stdout + out.stderr
    for part in ('torch', 'torchvision', 'mmcv (with ops)', 'mmdet.models', 'mmseg.models',
                 'mmpretrain.models', 'pycocotools', 'mim', 'dsnet_mm'):
        assert re.search(rf'ok\s+{re.escape(part)}\s', out.stdout), f'{part} not reported ok'
    where = 'cuda' if torch.cuda.is_available() else r'cpu \(no NVIDIA driver\)'
    assert re.search(rf'ok\s+device\s+{where}', out.stdout), out.stdout


def _pin(repo_root, stack, dist):
    """The requirement line of ``dist`` in the stack's pins file."""
    for line in open(osp.join(repo_root, 'requirements', 'stacks', f'{stack}.txt')):
        if re.match(rf'{re.escape(dist)}[=<>!~]', line):
            return line.split('#')[0].strip()
    raise AssertionError(f'{dist} is not pinned for {stack}')


def test_check_env_names_a_broken_import(repo_root, venv_python, tmp_path, stack):
    env = _broken(tmp_path, 'mmseg', 'ImportError("simulated: mmseg is broken")')
    out = run([venv_python, 'tools/check_env.py'], repo_root, env=env)
    assert out.returncode == 1
    assert re.search(r'FAIL\s+mmseg\.models\s+ImportError: simulated: mmseg is broken', out.stdout)
    mmseg_dist = {'upstream': 'mmsegmentation', 'onedl': 'onedl-mmsegmentation'}[stack]
    assert f'fix: pip install "{_pin(repo_root, stack, mmseg_dist)}" ftfy regex' in out.stdout
    assert 'BROKEN: mmseg.models' in out.stderr
    # the others are still checked and pass
    assert re.search(r'ok\s+mmdet\.models', out.stdout)
    assert re.search(r'ok\s+mmpretrain\.models', out.stdout)


@pytest.fixture(scope='module')
def broken_stack(tmp_path_factory, venv_python, stack):
    """One run of a copy of tools/check_env.py (and its pins) in which the installed stack pins
    another mmengine, in an environment where torchvision raises RuntimeError on import (a
    torchvision built for another torch does). -> (process, mmengine distribution)."""
    tmp = tmp_path_factory.mktemp('broken_stack')
    mmengine = _stacks(ROOT)[stack]['dists']['mmengine']
    (tmp / 'tools').mkdir()
    shutil.copy(osp.join(ROOT, 'tools', 'check_env.py'), tmp / 'tools' / 'check_env.py')
    shutil.copytree(osp.join(ROOT, 'requirements'), tmp / 'requirements')
    pins = tmp / 'requirements' / 'stacks' / f'{stack}.txt'
    pins.write_text(pins.read_text().replace(_pin(ROOT, stack, mmengine), f'{mmengine}==0.0.1'))
    env = _broken(tmp, 'torchvision', 'RuntimeError("operator torchvision::nms does not exist")')
    return run([venv_python, str(tmp / 'tools' / 'check_env.py')], ROOT, env=env), mmengine


def test_check_env_names_a_runtime_error(broken_stack):
    out, _ = broken_stack
    assert out.returncode == 1
    assert re.search(r'FAIL\s+torchvision\s+RuntimeError: operator torchvision::nms', out.stdout)
    assert re.search(r'FAIL\s+mmpretrain\.models', out.stdout)   # imports torchvision
    assert re.search(r'ok\s+pycocotools', out.stdout)
    assert re.search(r'ok\s+dsnet_mm', out.stdout)   # registration needs only <lib>.registry
    assert re.search(r'BROKEN: .*\btorchvision\b', out.stderr)


def test_registration_survives_a_broken_library(repo_root, venv_python, tmp_path):
    env = _broken(tmp_path, 'mmseg', 'AssertionError("MMCV==2.3.0 is used")')
    code = textwrap.dedent('''
        import warnings; warnings.simplefilter('ignore')
        import dsnet_mm
        from dsnet_mm.registry import registered_scopes, failed_scopes
        from mmdet.registry import MODELS as DET
        from mmpretrain.registry import MODELS as PRE
        print(sorted(registered_scopes()), DET.get('DSNet').__name__, PRE.get('DSNet').__name__)
        print(failed_scopes()['mmseg'])
    ''')
    out = run([venv_python, '-c', code], repo_root, env=env)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first == "['mmdet', 'mmpretrain'] DSNet DSNet"
    assert 'AssertionError: MMCV==2.3.0 is used' in second


def test_config_with_custom_imports_resolves_mmdet_bases(tmp_path):
    from mmengine.config import Config
    cfg_file = tmp_path / 'det.py'
    cfg_file.write_text(textwrap.dedent('''
        _base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py',
                  'mmdet::_base_/default_runtime.py']
        custom_imports = dict(imports=['dsnet_mm'], allow_failed_imports=False)
        model = dict(
            backbone=dict(_delete_=True, type='DSNet', arch='tiny', init_cfg=None),
            neck=dict(type='DSFPN', in_channels=[64, 128, 320, 512]))
    '''))
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.model.type == 'MaskRCNN'                       # from the mmdet base
    assert cfg.model.backbone == dict(type='DSNet', arch='tiny', init_cfg=None)
    assert 'depth' not in cfg.model.backbone                  # _delete_ dropped ResNet's args
    assert cfg.model.neck.out_channels == 256                 # merged with the base FPN
    assert cfg.default_scope == 'mmdet'
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == 'DSNet' and type(model.neck).__name__ == 'DSFPN'


_VENV = osp.realpath(osp.join(osp.dirname(sys.executable), '..'))


@pytest.mark.skipif(not osp.isfile(osp.join(_VENV, '.dsnet_mm_setup_stamp'))
                    or not _VENV.startswith(osp.realpath(ROOT) + os.sep),
                    reason="not running inside this checkout's venv made by tools/setup_env.sh "
                           '(the test runs the set-up on it again)')
def test_setup_is_idempotent_and_fast(repo_root, stack):
    import time
    env = dict(os.environ, VENV=_VENV, STACK=stack)
    start = time.time()
    out = run(['bash', 'tools/setup_env.sh'], repo_root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'already set up' in out.stdout
    assert 'all checks passed' in out.stdout
    assert '[1/5]' not in out.stdout   # nothing was installed again
    assert time.time() - start < 120


# ---------------------------------------------------------------------------- the two stacks
def _stacks(repo_root):
    """tools/check_env.py's table of what differs between the stacks."""
    code = 'import check_env, json; print(json.dumps(check_env.STACKS))'
    out = run([sys.executable, '-c', code], osp.join(repo_root, 'tools'))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_pins_live_in_one_place(repo_root):
    """Every stack package is pinned exactly in requirements/stacks/<stack>.txt, and no script or
    other requirements file writes a version of its own."""
    for name, spec in _stacks(repo_root).items():
        for dist in ['torch', 'torchvision', *spec['dists'].values()]:
            assert re.fullmatch(rf'{re.escape(dist)}===?\d+(\.\d+)+', _pin(repo_root, name, dist))
    for rel in ('tools/setup_env.sh', 'tools/check_env.py', 'tools/quickstart.sh', 'tools/stack.sh',
                'setup.py', 'requirements/runtime.txt', 'requirements/tests.txt',
                'requirements/mim.txt'):
        text = open(osp.join(repo_root, rel)).read()
        assert not re.search(r'\d+\.\d+\.\d+', text), f'{rel} writes a version: use the pins file'


def test_check_env_checks_the_pins_of_the_installed_stack(broken_stack, stack):
    out, mmengine = broken_stack
    assert out.returncode == 1
    assert re.search(rf'ok\s+stack\s+{stack} \(requirements/stacks/{stack}.txt\)', out.stdout)
    assert re.search(rf'FAIL\s+mmengine\s+AssertionError: {mmengine} \S+ is installed, the {stack} '
                     rf'stack pins {mmengine}==0.0.1', out.stdout), out.stdout
    assert f'fix: pip install "{mmengine}==0.0.1"' in out.stdout
    assert re.search(r'BROKEN: .*\bmmengine\b', out.stderr)


def test_check_env_expect_names_the_other_stack(repo_root, venv_python, stack):
    other = {'upstream': 'onedl', 'onedl': 'upstream'}[stack]
    out = run([venv_python, 'tools/check_env.py', '--expect', other], repo_root)
    assert out.returncode == 1
    assert f'the {stack} stack is installed, expected {other}' in out.stdout
    assert 'BROKEN: stack' in out.stderr


@pytest.mark.parametrize('editable', [True, False], ids=['editable', 'non-editable'])
def test_plugin_installs_without_touching_the_stack(repo_root, venv_python, tmp_path, editable):
    """pip, offline, resolving dsnet_mm's requirements against this ready environment: nothing but
    dsnet_mm itself would be installed (setup.py names no distribution that differs by stack)."""
    report = tmp_path / 'report.json'
    cmd = [venv_python, '-m', 'pip', 'install', '--dry-run', '--no-index', '--no-build-isolation',
           '--report', str(report), *(['-e'] if editable else []), repo_root]
    out = run(cmd, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    installs = json.loads(report.read_text())['install']
    assert [(i['metadata']['name'], i['download_info'].get('dir_info', {}).get('editable', False))
            for i in installs] == [('dsnet_mm', editable)]


def test_mmseg_configs_load_in_a_fresh_process(repo_root, venv_python, stack):
    """As `mim train mmseg CONFIG` reads them: no dsnet_mm imported beforehand. On OneDL their
    `mmseg::` bases resolve through dsnet_mm's scope fix (configs/ade20k/_base_/dsnet_mmseg.py)."""
    code = textwrap.dedent('''
        import glob, sys
        from mmengine.config import Config
        assert 'dsnet_mm' not in sys.modules
        for path in sorted(glob.glob('configs/ade20k/*.py')):
            cfg = Config.fromfile(path)
            print(path, cfg.default_scope, cfg.model.type, cfg.model.backbone.type,
                  cfg.model.decode_head.type, cfg.train_dataloader.dataset.type)
        from mmengine.config.utils import MODULE2PACKAGE
        print('mmseg:: ->', MODULE2PACKAGE['mmseg'])
    ''')
    out = run([venv_python, '-c', code], repo_root)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith('configs/ade20k/')]
    assert len(lines) == 3, out.stdout
    for line in lines:
        assert line.split()[1:] in (['mmseg', 'EncoderDecoder', 'DSNet', 'FPNHead', 'ADE20KDataset'],
                                    ['mmseg', 'EncoderDecoder', 'DSNet', 'UPerHead', 'ADE20KDataset'])
    want = {'onedl': 'onedl-mmsegmentation', 'upstream': 'mmsegmentation'}[stack]
    assert f'mmseg:: -> {want}\n' in out.stdout


def test_mim_spelling_resolves_and_is_documented(repo_root, venv_python, stack):
    name = run([venv_python, 'tools/check_env.py', '--mim-name', 'mmdet'], repo_root).stdout.strip()
    code = f'from mim.utils import module_full_name; print(module_full_name({name!r}))'
    out = run([venv_python, '-W', 'ignore', '-c', code], repo_root)
    assert out.returncode == 0 and out.stdout.strip(), out.stdout + out.stderr
    readme = open(osp.join(repo_root, 'README.md')).read()
    assert f'mim train {name} ' in readme


# ------------------------------------------------------- the torch build for an NVIDIA driver
def _fake_driver(tmp_path, cuda):
    """PATH with an `nvidia-smi` that reports a driver for CUDA ``cuda`` (none when None)."""
    bindir = tmp_path / f'bin-{cuda}'
    bindir.mkdir(exist_ok=True)
    if cuda:
        smi = bindir / 'nvidia-smi'
        smi.write_text(textwrap.dedent(f'''\
            #!/bin/sh
            echo "+---------------------------------------------------------------------------+"
            echo "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: {cuda}   |"
            echo "+---------------------------------------------------------------------------+"
        '''))
        smi.chmod(0o755)
    path = os.pathsep.join([str(bindir), osp.dirname(sys.executable)])
    return dict(os.environ, PATH=path)


@pytest.mark.parametrize('driver,spec,index', [
    (None, 'torch===', ''),                               # no driver: the package index build
    ('13.1', 'torch===', ''),                             # the index build (CUDA 13.0) runs
    ('12.2', 'torch=={v}+cu126', 'https://download.pytorch.org/whl/cu126'),
    ('12.9', 'torch=={v}+cu128', 'https://download.pytorch.org/whl/cu128'),
])
def test_torch_build_for_the_driver(repo_root, tmp_path, stack, driver, spec, index):
    torch_v = _pin(repo_root, stack, 'torch').split('=')[-1]
    tv_v = _pin(repo_root, stack, 'torchvision').split('=')[-1]
    out = run([sys.executable, 'tools/torch_cuda.py', 'plan', torch_v, tv_v], repo_root,
               env=_fake_driver(tmp_path, driver))
    assert out.returncode == 0, out.stderr
    plan = dict(line.split('=', 1) for line in out.stdout.splitlines())
    assert plan['DRIVER_CUDA'] == (driver or '')
    assert plan['TORCH_SPEC'].strip('"').startswith(spec.format(v=torch_v))
    assert plan['TORCH_INDEX'] == index


def test_torch_build_for_a_too_old_driver(repo_root, tmp_path):
    out = run([sys.executable, 'tools/torch_cuda.py', 'plan', '2.13.0', '0.28.0'], repo_root,
               env=_fake_driver(tmp_path, '11.8'))
    # setup_env.sh evals the output: an error message and `exit 3`
    res = run(['bash', '-c', out.stdout], repo_root)
    assert res.returncode == 3
    assert 'the NVIDIA driver supports CUDA 11.8, older than every CUDA build of torch 2.13.0' in res.stderr
    assert 'CPU_ONLY=1' in res.stderr


def test_setup_stops_before_filling_the_disk(repo_root, tmp_path, stack):
    """A new environment on a disk with less free space than torch needs: the set-up stops
    before pip (which would fail half-way with 'No space left on device'), says how much is
    free and where, and how to put the environment elsewhere."""
    venv = tmp_path / 'venv'
    env = dict(os.environ, VENV=str(venv), STACK=stack,
               SETUP_MIN_FREE_GB='100000')   # more than any disk here has
    out = run(['bash', 'tools/setup_env.sh'], repo_root, env=env, timeout=300)
    assert out.returncode == 1, out.output[-3000:]
    assert re.search(rf'[0-9.]+ GB free on the file system of {re.escape(str(venv))}; a new '
                     r'environment needs about 100000 GB', out.stderr), out.stderr
    assert 'VENV=/path/with/space bash tools/setup_env.sh' in out.stderr
    assert '[1/5]' not in out.stdout and 'torch' not in os.listdir(
        next((venv / 'lib').iterdir()) / 'site-packages')


@pytest.mark.skipif(__import__('torch').cuda.is_available(),
                    reason='a GPU is usable here: a fake driver cannot stand for an unusable one')
def test_setup_stops_when_torch_cannot_use_the_driver(repo_root, venv_python, tmp_path, stack):
    """A driver for CUDA 12.2 against this machine's reality (torch cannot reach a GPU): the
    set-up's check stops with exit 3, naming both CUDA versions and the pip command to fix it;
    tools/check_env.py fails on the same grounds."""
    import torch
    torch_v = _pin(repo_root, stack, 'torch').split('=')[-1]
    tv_v = _pin(repo_root, stack, 'torchvision').split('=')[-1]
    env = _fake_driver(tmp_path, '12.2')
    out = run([venv_python, 'tools/torch_cuda.py', 'verify'], repo_root, env=env)
    assert out.returncode == 3, out.stdout + out.stderr
    built = f'built for CUDA {torch.version.cuda}' if torch.version.cuda else 'a CPU-only build'
    assert (f'an NVIDIA driver is installed (nvidia-smi: CUDA 12.2) but torch {torch.__version__} '
            f'({built}) cannot use it') in out.stderr
    assert (f'{venv_python} -m pip install "torch=={torch_v}+cu126" "torchvision=={tv_v}+cu126" '
            '--index-url https://download.pytorch.org/whl/cu126') in out.stderr
    assert 'CPU_ONLY=1 bash tools/setup_env.sh' in out.stderr

    out = run([venv_python, 'tools/check_env.py'], repo_root, env=env)
    assert out.returncode == 1
    assert re.search(r'FAIL\s+device\s+AssertionError: an NVIDIA driver is installed '
                     r'\(nvidia-smi: CUDA 12\.2\)', out.stdout), out.stdout
    assert re.search(r'ok\s+mmcv CUDA ops\s+not run: no GPU visible', out.stdout)
    assert 'tools/torch_cuda.py verify' in out.stdout   # the fix: the command naming the build
    assert 'BROKEN: device' in out.stderr

    # and without a driver the same torch is fine: training runs on the CPU
    out = run([venv_python, 'tools/torch_cuda.py', 'verify'], repo_root, env=_fake_driver(tmp_path, None))
    assert out.returncode == 0 and 'trains on the CPU' in out.stdout


def test_idle_cores_sees_busy_cores(repo_root, venv_python):
    """The quick start's thread count: with every core held by a busy process, one thread (not
    the core count, which spin-waits), whatever the load average said a minute ago."""
    n = os.cpu_count() or 1
    spin = [subprocess.Popen([sys.executable, '-c', 'import time\nt = time.time() + 20\nwhile time.time() < t: pass'])
            for _ in range(n)]
    try:
        out = run([venv_python, 'tools/idle_cores.py', '--window', '2'], repo_root, timeout=60)
    finally:
        for p in spin:
            p.kill()
            p.wait()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '1'
