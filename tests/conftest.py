import os
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))   # tests/reference_dsnet.py


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='session')
def venv_python():
    """The interpreter running the tests (the project's .venv under tools/run_tests.sh)."""
    return sys.executable


@pytest.fixture(scope='session')
def stack():
    """The OpenMMLab stack under test ('upstream' or 'onedl'), as tools/check_env.py tells it."""
    import subprocess
    out = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'check_env.py'), '--stack'],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() in ('upstream', 'onedl'), out.stdout + out.stderr
    return out.stdout.strip()


@pytest.fixture(autouse=True)
def _seed():
    import torch
    torch.manual_seed(0)
    yield
