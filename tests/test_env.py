"""The environment set-up and its check (issue: a fresh machine to a green test run)."""
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest


def _run(cmd, cwd, env=None, timeout=600):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _broken(tmp_path, package, error):
    """An environment where ``package`` shadows the real one and raises ``error`` on import,
    as a half-installed or mismatched package does."""
    (tmp_path / package).mkdir()
    (tmp_path / package / '__init__.py').write_text(f'raise {error}\n')
    env = dict(os.environ)
    env['PYTHONPATH'] = str(tmp_path) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def test_check_env_passes(repo_root, venv_python):
    out = _run([venv_python, 'tools/check_env.py'], repo_root)
    assert out.returncode == 0, out.stdout + out.stderr
    for part in ('torch', 'torchvision', 'mmcv (with ops)', 'mmdet.models', 'mmseg.models',
                 'mmpretrain.models', 'pycocotools', 'mim', 'dsnet_mm'):
        assert re.search(rf'ok\s+{re.escape(part)}\s', out.stdout), f'{part} not reported ok'


def test_check_env_names_a_broken_import(repo_root, venv_python, tmp_path):
    env = _broken(tmp_path, 'mmseg', 'ImportError("simulated: mmseg is broken")')
    out = _run([venv_python, 'tools/check_env.py'], repo_root, env=env)
    assert out.returncode == 1
    assert re.search(r'FAIL\s+mmseg\.models\s+ImportError: simulated: mmseg is broken', out.stdout)
    assert 'fix: pip install mmsegmentation==1.2.2' in out.stdout
    assert 'BROKEN: mmseg.models' in out.stderr
    # the others are still checked and pass
    assert re.search(r'ok\s+mmdet\.models', out.stdout)
    assert re.search(r'ok\s+mmpretrain\.models', out.stdout)


def test_check_env_names_a_runtime_error(repo_root, venv_python, tmp_path):
    # A torchvision built for another torch raises RuntimeError, not ImportError.
    env = _broken(tmp_path, 'torchvision', 'RuntimeError("operator torchvision::nms does not exist")')
    out = _run([venv_python, 'tools/check_env.py'], repo_root, env=env)
    assert out.returncode == 1
    assert re.search(r'FAIL\s+torchvision\s+RuntimeError: operator torchvision::nms', out.stdout)
    assert re.search(r'FAIL\s+mmpretrain\.models', out.stdout)   # imports torchvision
    assert re.search(r'ok\s+pycocotools', out.stdout)
    assert re.search(r'ok\s+dsnet_mm', out.stdout)   # registration needs only <lib>.registry


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
    out = _run([venv_python, '-c', code], repo_root, env=env)
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


def test_readme_quickstart_is_what_ci_runs(repo_root):
    readme = open(osp.join(repo_root, 'README.md')).read()
    block = re.search(r'## Quick start.*?```bash\n(.*?)```', readme, re.S).group(1)
    commands = [line.split('#')[0].strip() for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    ci = open(osp.join(repo_root, '.ci', 'run')).read()
    ci_commands = [line.split('#')[0].strip() for line in ci.splitlines()
                   if line.strip().startswith('bash tools/')]
    assert ci_commands[:2] == commands   # first exactly the quick start
    for extra in ci_commands[2:]:        # then only steps the README documents
        assert extra in readme, f'.ci/run runs {extra!r}, which the README does not mention'
    assert 'set -euo pipefail' in ci


@pytest.mark.skipif(not osp.isfile(osp.join(osp.dirname(sys.executable), '..',
                                            '.dsnet_mm_setup_stamp')),
                    reason='not running inside a venv made by tools/setup_env.sh')
def test_setup_is_idempotent_and_fast(repo_root):
    import time
    venv = osp.abspath(osp.join(osp.dirname(sys.executable), '..'))
    env = dict(os.environ, VENV=venv)
    start = time.time()
    out = _run(['bash', 'tools/setup_env.sh'], repo_root, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert 'already set up' in out.stdout
    assert 'all checks passed' in out.stdout
    assert '[1/5]' not in out.stdout   # nothing was installed again
    assert time.time() - start < 120
