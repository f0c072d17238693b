"""What ``import dsnet_mm`` does: it registers DSNet, DSFPN and DetMaskTTAModel, and nothing else.
mmengine's checkpoint loaders, its distributed init and its config-scope table
(``MODULE2PACKAGE``) stay mmengine's, torch's ``weights_only`` allow-list stays torch's. What the
configs ask for (``AtomicCheckpointHook``, ``dsnet_mm.engine.cpu_distributed``,
``dsnet_mm.utils.config_scopes``) happens only where they ask, and says so once."""
import sys

import torch

from helpers import free_port, run, subprocess_env

CHECK = '''
import mmengine.dist.utils as dist_utils
from mmengine.runner.checkpoint import CheckpointLoader
schemes = dict(CheckpointLoader._schemes)
init_dist_pytorch = dist_utils._init_dist_pytorch
import dsnet_mm, dsnet_mm.engine  # what every dsnet_mm config imports
assert dict(CheckpointLoader._schemes) == schemes, 'a checkpoint loader was replaced'
assert dist_utils._init_dist_pytorch is init_dist_pytorch, "mmengine's dist init was replaced"
import torch.distributed
assert not torch.distributed.is_initialized()
print('untouched')
'''


REGISTERS_ONLY = '''
import torch
from mmengine.config.utils import MODULE2PACKAGE
table = dict(MODULE2PACKAGE)
import dsnet_mm, dsnet_mm.engine
from dsnet_mm.registry import registered_scopes
assert registered_scopes() == {'mmdet': ['DSNet', 'DSFPN', 'DetMaskTTAModel'],
                               'mmseg': ['DSNet', 'DSFPN'],
                               'mmpretrain': ['DSNet']}, registered_scopes()
assert dict(MODULE2PACKAGE) == table, 'the config scope table changed'
from dsnet_mm.utils.safe_load import mmengine_checkpoint_globals
allowed = {id(g[0] if isinstance(g, tuple) else g) for g in torch.serialization.get_safe_globals()}
ours = [g for g in mmengine_checkpoint_globals()
        if id(g[0] if isinstance(g, tuple) else g) in allowed]
assert not ours, f'torch allow-list extended at import: {ours}'
import sys
assert 'timm' not in sys.modules, 'import dsnet_mm imported timm (optional: dsnet_mm.timm needs it)'
import dsnet_mm.utils.config_scopes   # what the ADE20K configs import: the scope fix, only there
print('registers only', MODULE2PACKAGE['mmseg'])
'''


def test_import_registers_and_does_nothing_else():
    p = run([sys.executable, '-c', REGISTERS_ONLY], env=subprocess_env(), timeout=300)
    assert p.returncode == 0 and 'registers only' in p.stdout, p.stdout + p.stderr[-3000:]


def test_import_replaces_nothing_in_mmengine():
    p = run([sys.executable, '-c', CHECK], env=subprocess_env(), timeout=300)
    assert p.returncode == 0 and 'untouched' in p.stdout, p.stdout + p.stderr[-3000:]


def test_loading_a_checkpoint_logs_only_what_is_true(tmp_path):
    """mmengine's own loader reads local files: no 'Loads checkpoint by l_clearly backend'."""
    path = tmp_path / 'w.pth'
    torch.save({'state_dict': torch.nn.Linear(2, 2).state_dict()}, path)
    code = f'''
import logging, dsnet_mm, torch
from mmengine.logging import MMLogger
from mmengine.runner.checkpoint import load_checkpoint
logger = MMLogger.get_instance('manners', log_level='DEBUG')
load_checkpoint(torch.nn.Linear(2, 2), {str(path)!r}, logger=logger)
'''
    p = run([sys.executable, '-c', code], env=subprocess_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert 'clearly' not in out
    assert 'Loads checkpoint by local backend' in out


def test_cpu_process_group_only_when_asked_and_launched(tmp_path):
    """dsnet_mm.engine.cpu_distributed initialises gloo in a torchrun-like process without CUDA
    (and logs it once); in a plain process it does nothing."""
    code = '''
import torch.distributed as dist
import dsnet_mm.engine.cpu_distributed
print('initialised', dist.is_initialized(), dist.get_world_size() if dist.is_initialized() else 0)
'''
    plain = run([sys.executable, '-c', code], env=subprocess_env(), timeout=300)
    assert 'initialised False' in plain.stdout, plain.stderr[-3000:]
    if torch.cuda.is_available():
        return   # with CUDA the module leaves everything to mmengine
    env = dict(subprocess_env(), RANK='0', WORLD_SIZE='1', LOCAL_RANK='0',
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(free_port()))
    launched = run([sys.executable, '-c', code], env=env, timeout=300)
    out = launched.output
    assert 'initialised True 1' in launched.stdout, out[-3000:]
    assert out.count('gloo process group (rank 0 of 1) was initialised') == 1, out[-3000:]
