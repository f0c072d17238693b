"""What ``import dsnet_mm`` does: it registers DSNet, DSFPN and DetMaskTTAModel, and nothing else.
mmengine's checkpoint loaders, its distributed init and its config-scope table
(``MODULE2PACKAGE``) stay mmengine's, torch's ``weights_only`` allow-list stays torch's. What the
configs ask for (``AtomicCheckpointHook``, ``dsnet_mm.engine.cpu_distributed``,
``dsnet_mm.utils.config_scopes``) happens only where they ask, and says so once."""
import sys

import pytest
import torch

from helpers import free_port, run, subprocess_env

# One fresh interpreter (what a user's `mim train` is) for the checks below: each prints a line
# that its test looks for, so one failure does not hide the others' results.
FRESH_IMPORT = '''
import sys
import torch
import mmengine.dist.utils as dist_utils
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.runner.checkpoint import CheckpointLoader
schemes = dict(CheckpointLoader._schemes)
init_dist_pytorch = dist_utils._init_dist_pytorch
table = dict(MODULE2PACKAGE)
import dsnet_mm, dsnet_mm.engine  # what every dsnet_mm config imports

from dsnet_mm.registry import registered_scopes
from dsnet_mm.utils.safe_load import mmengine_checkpoint_globals
allowed = {id(g[0] if isinstance(g, tuple) else g) for g in torch.serialization.get_safe_globals()}
ours = [g for g in mmengine_checkpoint_globals()
        if id(g[0] if isinstance(g, tuple) else g) in allowed]
print('registered:', registered_scopes())
print('scope table unchanged:', dict(MODULE2PACKAGE) == table)
print('torch allow-list extended by:', ours)
print('timm imported:', 'timm' in sys.modules)
print('checkpoint loaders unchanged:', dict(CheckpointLoader._schemes) == schemes)
print('dist init unchanged:', dist_utils._init_dist_pytorch is init_dist_pytorch)
import dsnet_mm.engine.cpu_distributed   # not launched by torchrun: must do nothing
print('process group initialised:', torch.distributed.is_initialized())

from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import load_checkpoint
logger = MMLogger.get_instance('manners', log_level='DEBUG')
load_checkpoint(torch.nn.Linear(2, 2), sys.argv[1], logger=logger)
print('loaded')
'''


@pytest.fixture(scope='module')
def fresh_import(tmp_path_factory):
    path = tmp_path_factory.mktemp('fresh') / 'w.pth'
    torch.save({'state_dict': torch.nn.Linear(2, 2).state_dict()}, path)
    p = run([sys.executable, '-c', FRESH_IMPORT, path], env=subprocess_env(), timeout=300)
    assert 'loaded' in p.stdout, p.output[-3000:]
    return p.output


def test_import_registers_the_models(fresh_import):
    assert ("registered: {'mmdet': ['DSNet', 'DSFPN', 'DetMaskTTAModel'], "
            "'mmseg': ['DSNet', 'DSFPN'], 'mmpretrain': ['DSNet']}") in fresh_import


def test_import_does_nothing_else(fresh_import):
    for line in ['scope table unchanged: True',
                 'torch allow-list extended by: []',
                 'timm imported: False',     # optional: only dsnet_mm.timm needs it
                 'checkpoint loaders unchanged: True',
                 'dist init unchanged: True',
                 'process group initialised: False']:
        assert line in fresh_import, (line, fresh_import[-3000:])


def test_loading_a_checkpoint_logs_only_what_is_true(fresh_import):
    """mmengine's own loader reads local files: no 'Loads checkpoint by l_clearly backend'."""
    assert 'clearly' not in fresh_import
    assert 'Loads checkpoint by local backend' in fresh_import


def test_cpu_process_group_when_launched():
    """dsnet_mm.engine.cpu_distributed initialises gloo in a torchrun-like process without CUDA
    (and logs it once); in a plain process it does nothing (test_import_does_nothing_else)."""
    code = '''
import torch.distributed as dist
import dsnet_mm.engine.cpu_distributed
print('initialised', dist.is_initialized(), dist.get_world_size() if dist.is_initialized() else 0)
'''
    if torch.cuda.is_available():
        return   # with CUDA the module leaves everything to mmengine
    env = dict(subprocess_env(), RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    launched = run([sys.executable, '-c', code], env=env, timeout=300)
    out = launched.output
    assert 'initialised True 1' in launched.stdout, out[-3000:]
    assert out.count('gloo process group (rank 0 of 1) was initialised') == 1, out[-3000:]
