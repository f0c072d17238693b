"""Two-process training with ``mim train mmdet CONFIG --launcher pytorch --gpus 2`` (gloo on CPU).

Checks that (1) both ranks end with identical weights (DDP keeps them in sync) and (2) the
logged losses are the mean over ranks: mmengine's ``parse_losses`` does not reduce across
processes and only rank 0 logs, so without ``MeanLossHook`` the log shows rank 0's loss alone.
A probe hook records each rank's local loss before ``MeanLossHook`` runs.
"""
import json
import os.path as osp
import glob

import pytest
import torch

import dsnet_mm  # noqa: F401
from dsnet_mm.utils import read_checkpoint
from helpers import MIM, free_port, make_tiny_shapes, run, subprocess_env, write_tiny_config

pytestmark = pytest.mark.slow

PROBE = '''
import json, os
import os.path as osp
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Records this rank's own losses (it runs before MeanLossHook: same priority, registered
    first) and dumps this rank's final parameters and buffers."""
    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        with open(osp.join(runner.work_dir, f'local_loss_rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps({k: float(v) for k, v in outputs.items()}) + '\\n')

    def after_train(self, runner):
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        torch.save(model.state_dict(), osp.join(runner.work_dir, f'final_rank{get_rank()}.pth'))
'''


def test_two_processes_same_weights_and_mean_loss(tmp_path, mim_mmdet):
    data = make_tiny_shapes(tmp_path / 'shapes', num_train=8, num_val=4)
    (tmp_path / 'probe.py').write_text(PROBE)
    extra = '''
        custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine',
                                       'dsnet_mm.engine.cpu_distributed', 'probe'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='RankProbeHook'), dict(type='MeanLossHook')]
        env_cfg = dict(dist_cfg=dict(backend='gloo'))
    '''
    # 8 images, 2 ranks x batch 2: 2 iterations per epoch, 2 epochs
    cfg = write_tiny_config(tmp_path / 'cfg.py', data, max_epochs=2, batch_size=2, keep=1,
                            extra=extra)
    wd = tmp_path / 'work'
    env = subprocess_env([tmp_path])
    env.update(OMP_NUM_THREADS='1')
    p = run([MIM, 'train', mim_mmdet, cfg, '--launcher', 'pytorch', '--gpus', '2',
             '--port', str(free_port()), '--work-dir', str(wd)], env=env, timeout=400)
    out = p.output
    assert p.returncode == 0, out[-5000:]

    # (1) identical weights on both ranks
    w0 = torch.load(wd / 'final_rank0.pth')
    w1 = torch.load(wd / 'final_rank1.pth')
    assert w0.keys() == w1.keys()
    n_params = 0
    for k, v in w0.items():
        if 'running_' in k:
            continue   # BatchNorm statistics are per rank (no SyncBN on CPU): not parameters
        assert torch.equal(v, w1[k]), f'{k} differs between ranks'
        n_params += 1
    assert n_params > 100
    # and rank 0's are the ones in the saved checkpoint
    ckpt = read_checkpoint(str(wd / 'epoch_2.pth'))['state_dict']   # a runner checkpoint
    for k, v in w0.items():
        assert torch.equal(v, ckpt[k]), k

    # (2) logged loss == mean of the ranks' local losses, every iteration
    local = [[json.loads(line) for line in open(wd / f'local_loss_rank{r}.jsonl')]
             for r in (0, 1)]
    assert len(local[0]) == len(local[1]) == 4
    scalars = glob.glob(osp.join(wd, '*', 'vis_data', 'scalars.json'))
    assert len(scalars) == 1
    logged = [json.loads(line) for line in open(scalars[0]) if '"loss"' in line]
    assert [r['iter'] for r in logged] == [1, 2, 3, 4]
    differs = 0
    for it, rec in enumerate(logged):
        for key in ('loss', 'loss_cls', 'loss_mask', 'loss_rpn_cls'):
            mean = (local[0][it][key] + local[1][it][key]) / 2
            assert rec[key] == pytest.approx(mean, rel=2e-3, abs=2e-4), (it, key, rec, local)
            differs += abs(local[0][it][key] - local[1][it][key]) > 1e-3
    assert differs, 'the ranks saw the same losses: the check above would prove nothing'
