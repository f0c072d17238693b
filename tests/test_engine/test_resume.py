"""Interrupted training resumes where it stopped, under torch's default ``weights_only=True``.

Real runs of the embedded config (mmdet's tools/train.py, mmengine runner) on a tiny shapes set,
killed with SIGKILL while it writes a checkpoint, then resumed with ``--resume``
(``AtomicCheckpointHook`` applies the allow-list before the runner loads). Also: the allow-list of
``dsnet_mm.utils.allow_mmengine_checkpoints`` is exactly what a runner checkpoint needs and
nothing arbitrary loads; corrupt / truncated checkpoints give a clear error; a kill while a
checkpoint is being written leaves the previous one usable (``AtomicCheckpointHook``).
"""
import glob
import json
import os
import os.path as osp
import pickletools
import signal
import sys
import zipfile

import pytest
import torch

from dsnet_mm.utils import allow_mmengine_checkpoints
from helpers import MIM, make_tiny_shapes, mmdet_tool, run, subprocess_env, write_tiny_config

pytestmark = pytest.mark.slow
ITERS_PER_EPOCH = 2   # 8 training images, batch 4


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return make_tiny_shapes(tmp_path_factory.mktemp('shapes'))


def _train_cmd(cfg, work_dir, *extra):
    return [sys.executable, mmdet_tool('train.py'), cfg, '--work-dir', str(work_dir), *extra]


def _last(work_dir):
    p = osp.join(work_dir, 'last_checkpoint')
    return open(p).read().strip() if osp.exists(p) else None


def _load(path):
    allow_mmengine_checkpoints()
    return torch.load(path, map_location='cpu')   # weights_only: torch's default (True)


KILL_HOOK = '''
import os, signal, threading, time
import os.path as osp
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillWhileSavingHook(Hook):
    """SIGKILLs its own process while the checkpoint of epoch $KILL_AT_EPOCH is being written:
    a watcher thread fires as soon as the checkpoint file being written appears."""

    def before_save_checkpoint(self, runner, checkpoint):
        at = os.environ.get('KILL_AT_EPOCH')
        if not at or checkpoint['meta']['epoch'] != int(at):
            return
        names = [f'.epoch_{at}.pth.tmp', f'epoch_{at}.pth']

        def watch():
            while not any(osp.exists(osp.join(runner.work_dir, n)) for n in names):
                time.sleep(0.0002)
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=watch, daemon=True).start()
'''
KILL_AT = 3


def _env(cfg, **kw):
    """The environment of a run of ``cfg``: its folder (the kill hook) importable."""
    return subprocess_env([osp.dirname(cfg)], **kw)


@pytest.fixture(scope='module')
def killed_run(tiny, tmp_path_factory):
    """A run SIGKILLed (no cleanup, no atexit) while it writes the checkpoint of epoch 3, the worst
    moment: with mmengine's own CheckpointHook, epoch_3.pth would be half-written and epoch_1.pth
    (max_keep_ckpts=2) already deleted. -> (cfg, work_dir, K): epoch_K.pth is the last complete
    checkpoint."""
    d = tmp_path_factory.mktemp('resume')
    (d / 'killhook.py').write_text(KILL_HOOK)
    cfg = write_tiny_config(d / 'cfg.py', tiny, max_epochs=KILL_AT + 1, keep=2, extra='''
        custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine', 'killhook'],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='MeanLossHook'), dict(type='ExitWithLauncherHook'),
                        dict(type='KillWhileSavingHook')]
    ''')
    wd = d / 'work'
    p = run(_train_cmd(cfg, wd), env=dict(_env(cfg), KILL_AT_EPOCH=str(KILL_AT)), timeout=400)
    assert p.returncode == -signal.SIGKILL, p.output[-3000:]
    return cfg, wd, KILL_AT - 1


def _history(ckpt, key='train/loss'):
    buf = ckpt['message_hub']['log_scalars'][key]
    return buf.data[0].tolist()   # HistoryBuffer.data -> (values, counts)


def test_kill_while_saving_keeps_the_previous_checkpoint(killed_run):
    """AtomicCheckpointHook: the checkpoint being written is a hidden file until complete, and
    the outdated one is deleted only after that."""
    _, wd, k = killed_run
    assert not (wd / f'epoch_{k + 1}.pth').exists(), 'the checkpoint was completed before the kill'
    assert (wd / f'.epoch_{k + 1}.pth.tmp').exists()   # the half-written file, under a hidden name
    assert _last(wd) == str(wd / f'epoch_{k}.pth')
    assert _load(wd / f'epoch_{k}.pth')['meta']['epoch'] == k   # complete and loadable
    assert (wd / f'epoch_{k - 1}.pth').exists()   # max_keep_ckpts=2: not deleted before the save


def test_sigkilled_run_resumes_where_it_stopped(killed_run, tmp_path):
    import shutil
    cfg, wd0, k = killed_run
    wd = tmp_path / 'work'   # a copy: the killed run stays as it was for the other tests
    shutil.copytree(wd0, wd)
    (wd / 'last_checkpoint').write_text(str(wd / f'epoch_{k}.pth'))
    before = _load(osp.join(wd, f'epoch_{k}.pth'))
    assert before['meta']['epoch'] == k and before['meta']['iter'] == k * ITERS_PER_EPOCH
    loss_before = _history(before)
    assert len(loss_before) == k * ITERS_PER_EPOCH

    final_epoch = k + 2
    out = run(_train_cmd(cfg, wd, '--resume', '--cfg-options',
                         f'train_cfg.max_epochs={final_epoch}'), env=_env(cfg),
              check=True).output
    assert f'resumed epoch: {k}, iter: {k * ITERS_PER_EPOCH}' in out, out[-3000:]
    # the half-written file was replaced by the complete save; max_keep_ckpts=2
    assert _last(wd) == str(wd / f'epoch_{final_epoch}.pth')
    assert not (wd / f'.epoch_{k + 1}.pth.tmp').exists()
    assert sorted(p.name for p in wd.glob('*.pth')) == [f'epoch_{k + 1}.pth',
                                                          f'epoch_{final_epoch}.pth']

    after = _load(osp.join(wd, f'epoch_{final_epoch}.pth'))
    n_iter = final_epoch * ITERS_PER_EPOCH
    # iteration counter
    assert after['meta']['epoch'] == final_epoch and after['meta']['iter'] == n_iter
    # optimizer: AdamW's per-parameter step counts continued (a fresh optimizer would say 4)
    steps = {float(s['step']) for s in after['optimizer']['state'].values()}
    assert steps == {float(n_iter)}, steps
    # schedulers: the iteration-based warm-up counted every iteration of both runs
    sched = after['param_schedulers']
    assert sched[0]['last_step'] == n_iter, sched[0]
    assert after['optimizer']['param_groups'][0]['lr'] != before['optimizer']['param_groups'][0]['lr']
    # logged history: the old values are kept and the new ones appended
    loss_after = _history(after)
    assert len(loss_after) == n_iter
    assert loss_after[:len(loss_before)] == pytest.approx(loss_before)
    # the resumed run logs iterations k*2+1 ... n_iter (not 1 ...)
    runs = sorted(glob.glob(osp.join(wd, '*', 'vis_data', 'scalars.json')))
    resumed_iters = [json.loads(line)['iter'] for line in open(runs[-1])
                     if '"loss"' in line]
    assert resumed_iters[0] == k * ITERS_PER_EPOCH + 1 and resumed_iters[-1] == n_iter


def _pickle_globals(path):
    """(module, name) of every global a torch zip checkpoint's pickle refers to."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith('data.pkl')))
    found, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
            strings.append(arg)
        elif op.name == 'GLOBAL':
            found.add(tuple(arg.split(' ', 1)))
        elif op.name == 'STACK_GLOBAL':
            found.add((strings[-2], strings[-1]))
    return found


def test_allow_list_is_exactly_what_runner_checkpoints_need(killed_run):
    from dsnet_mm.utils.safe_load import mmengine_checkpoint_globals
    _, wd, k = killed_run
    path = osp.join(wd, f'epoch_{k}.pth')
    allowed = {tuple(g[1].rsplit('.', 1)) if isinstance(g, tuple) else
               (g.__module__, g.__qualname__) for g in mmengine_checkpoint_globals()}
    torch_own = {('collections', 'OrderedDict'), ('_codecs', 'encode')}   # torch allows these
    needed = {('builtins', n) if m == '__builtin__' else (m, n)
              for m, n in _pickle_globals(path) if not m.startswith('torch')} - torch_own
    assert needed <= allowed, f'not allow-listed: {needed - allowed}'
    # minimal: every global we allow is referenced by real checkpoints, except the numpy
    # dtype classes, which are needed as the types of BUILD (the load below fails without them)
    assert {g for g in allowed if not g[1].endswith('DType')} == needed, needed

    # torch's default weights_only=True refuses the file, also after `import dsnet_mm` ...
    code = f'import torch; torch.load({path!r})'
    p = run([sys.executable, '-c', 'import dsnet_mm; ' + code], env=subprocess_env())
    assert p.returncode != 0 and 'weights_only' in p.stderr, p.stderr[-2000:]
    # ... with the allow-list, the file loads and weights_only is still on
    allow = 'from dsnet_mm.utils import allow_mmengine_checkpoints; allow_mmengine_checkpoints(); '
    p = run([sys.executable, '-c', allow + code], env=subprocess_env())
    assert p.returncode == 0, p.stderr[-2000:]


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned > "$EVIL_MARK"', ))


class _SneakyGetattr:
    """getattr is allowed only for HistoryBuffer's statistics methods (see checkpoint.py)."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, 'register_statistics'))


def test_arbitrary_pickles_still_refused(tmp_path, monkeypatch):
    import argparse
    allow_mmengine_checkpoints()   # refused with the allow-list in place
    mark = tmp_path / 'pwned'
    monkeypatch.setenv('EVIL_MARK', str(mark))
    for i, obj in enumerate([{'state_dict': {}, 'x': _Evil()},
                             {'meta': argparse.Namespace(a=1)},
                             {'message_hub': _SneakyGetattr()}]):
        p = tmp_path / f'bad{i}.pth'
        torch.save(obj, p)
        with pytest.raises(Exception, match='weights_only|Unsupported global|not allowed'):
            torch.load(p)
    assert not mark.exists()


def test_corrupt_checkpoints_give_a_clear_error(killed_run, tmp_path):
    from dsnet_mm.utils import read_checkpoint
    _, wd, k = killed_run
    good = osp.join(wd, f'epoch_{k}.pth')
    data = open(good, 'rb').read()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'this is not a checkpoint' * 100)
    for p in (truncated, garbage):
        with pytest.raises(RuntimeError, match='truncated, corrupt or not a PyTorch checkpoint'):
            read_checkpoint(str(p))
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        read_checkpoint(str(tmp_path / 'nope.pth'))

    # --resume from a truncated last checkpoint: the runner says so (mmengine's loader goes
    # through read_checkpoint once dsnet_mm is imported)
    cfg = killed_run[0]
    wd2 = tmp_path / 'work'
    wd2.mkdir()
    (wd2 / 'last_checkpoint').write_text(str(truncated))
    p = run(_train_cmd(cfg, wd2, '--resume'), env=_env(cfg), timeout=300)
    assert p.returncode != 0
    assert 'truncated, corrupt or not a PyTorch checkpoint' in p.stderr + p.stdout, \
        (p.stdout + p.stderr)[-3000:]


@pytest.mark.parametrize('damage', ['unreadable', 'missing'])
def test_resume_skips_an_unreadable_last_checkpoint(killed_run, tmp_path, damage):
    """last_checkpoint names a truncated (or deleted) file: --resume takes the newest readable
    checkpoint of the run, says which and why, and keeps the bad file's bytes."""
    import shutil
    cfg, wd0, k = killed_run
    wd = tmp_path / 'work'
    shutil.copytree(wd0, wd)
    (wd / 'last_checkpoint').write_text(str(wd / f'epoch_{k}.pth'))
    bad = wd / f'epoch_{k}.pth'
    if damage == 'unreadable':
        cut = bad.read_bytes()[:osp.getsize(bad) // 2]
        bad.write_bytes(cut)
    else:
        bad.unlink()
    out = run(_train_cmd(cfg, wd, '--resume', '--cfg-options', f'train_cfg.max_epochs={k + 1}'),
              env=_env(cfg), check=True).output
    assert f'Resuming from {wd}/epoch_{k - 1}.pth instead, the newest readable' in out, out[-3000:]
    assert ('truncated, corrupt' if damage == 'unreadable' else 'does not exist') in out
    assert f'resumed epoch: {k - 1}, iter: {(k - 1) * ITERS_PER_EPOCH}' in out
    if damage == 'unreadable':   # never overwritten: the resumed run wrote a new epoch_k.pth
        assert (wd / f'epoch_{k}.pth.unreadable').read_bytes() == cut
        assert f'kept as {wd}/epoch_{k}.pth.unreadable' in out
    assert _load(wd / f'epoch_{k + 1}.pth')['meta']['epoch'] == k + 1


def test_test_checkpoint_that_is_missing_says_it_is_the_checkpoint_to_test(killed_run, tmp_path,
                                                                            mim_mmdet):
    cfg = killed_run[0]
    p = run([MIM, 'test', mim_mmdet, cfg, '--checkpoint', str(tmp_path / 'missing.pth'),
             '--work-dir', str(tmp_path / 'test')], env=_env(cfg, venv_on_path=True),
            timeout=300)   # mim runs `python`
    out = p.output
    assert p.returncode != 0
    assert 'is the checkpoint to test' in out, out[-3000:]
    assert 'model_converters' not in out    # no advice about backbone weights
