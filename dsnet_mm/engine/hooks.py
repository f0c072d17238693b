"""Hooks that make interrupted and multi-process training trustworthy.

``AtomicCheckpointHook``
    mmengine's ``CheckpointHook`` writes ``epoch_N.pth`` in place and, with ``max_keep_ckpts``,
    deletes the oldest checkpoint *before* writing the new one. A job killed while saving (time
    limit, pre-emption, OOM killer) can therefore leave a truncated newest file, and with
    ``max_keep_ckpts=1`` nothing usable at all. This subclass writes to a hidden temporary file in
    the same directory, flushes it to disk, renames it over the final name (``os.replace`` is
    atomic on POSIX), then rewrites ``last_checkpoint`` the same way, and only then deletes
    outdated checkpoints. At every instant ``last_checkpoint`` names a complete file, so
    ``--resume`` always works. A kill during saving leaves at most a stale ``.*.tmp`` file, which
    the next save of that step replaces. A save that fails (a full disk: ``ENOSPC``, a quota:
    ``EDQUOT``) removes its temporary file, leaves the previous checkpoint and
    ``last_checkpoint`` as they were, and stops the run with an error naming the work dir, the
    bytes a checkpoint needs and the fix.

    Before the runner loads anything (``before_run``, in training, validation and testing), the
    hook adds mmengine's checkpoint classes to torch's ``weights_only`` allow-list
    (``dsnet_mm.utils.allow_mmengine_checkpoints``), checks the file it is about to load and
    says what that file was for: the
    checkpoint to resume from, to start training from (``load_from``) or to test
    (``mim test --checkpoint``). ``--resume`` (no path) whose ``last_checkpoint`` names a missing
    or unreadable file resumes from the newest readable checkpoint of the run instead, and
    logs which one and why; the unreadable file is kept under ``<name>.unreadable`` (never
    overwritten by the resumed run's save of that step).

``ExitWithLauncherHook``
    ``mim train`` runs mmdet's ``tools/train.py`` as a child process and waits for it; the
    trainer forks its DataLoader workers. A SIGKILL of ``mim`` (or of ``torchrun``) leaves the
    trainer running as an orphan, still training and holding its workers and memory. With this
    hook the trainer asks the kernel (Linux ``PR_SET_PDEATHSIG``) to SIGKILL it when its launcher
    dies, and every process it forks (the DataLoader workers) to be SIGKILLed when the trainer
    dies, so nothing outlives a killed run. It acts only when the trainer's parent is such a
    launcher: a trainer started from a shell (``nohup python tools/train.py ...``) is left alone.

``MeanLossHook``
    mmengine's ``BaseModel.parse_losses`` does not reduce across processes (mmcv 1.x did), and
    only rank 0 logs, so the logged losses are rank 0's alone. This hook all-reduces the
    ``log_vars`` of every iteration (one collective for all of them) and divides by the world
    size before ``RuntimeInfoHook`` puts them in the message hub, so logs, ``scalars.json`` and
    the checkpointed history hold the mean over ranks. Gradients are unaffected (DDP already
    averages them). Single-process runs are untouched.
"""
import ctypes
import errno
import os
import os.path as osp
import re
import shutil
import signal
import sys

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size, is_distributed, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop
from mmengine.runner.checkpoint import find_latest_checkpoint

from ..utils import allow_mmengine_checkpoints, read_checkpoint


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str, text: str):
    """Write ``text`` to ``path`` so that readers see the old or the new content, never a part."""
    tmp = osp.join(osp.dirname(path) or '.', f'.{osp.basename(path)}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:   # e.g. a full disk: leave no temporary file behind
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def _human(n: int) -> str:
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'bytes' else f'{n:.1f} {unit}'
        n /= 1024


def _tensor_bytes(obj) -> int:
    """Bytes of the tensors in nested dicts / lists ``obj``."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _is_local(path: str) -> bool:
    return '://' not in str(path)


def _free_name(path: str) -> str:
    n, candidate = 1, path
    while osp.exists(candidate):
        candidate, n = f'{path}.{n}', n + 1
    return candidate


def _check_readable(path: str, role: str, todo: str):
    """Raise a clear error, saying what ``path`` was for, unless it is a readable checkpoint."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path!r} is {role}. {todo}')
    try:
        read_checkpoint(path)
    except RuntimeError as e:
        raise RuntimeError(f'{path!r} is {role}, and it cannot be loaded: {e}') from e


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are never half-written (see the module docstring).

    Same arguments as ``CheckpointHook``. Applies to local directories; for other storage
    backends (``backend_args`` with a remote prefix) it behaves exactly like the parent.
    """

    @staticmethod
    def tmp_name(filename: str) -> str:
        return f'.{filename}.tmp'

    # ------------------------------------------------------------ what the runner will load
    def before_run(self, runner):
        super().before_run(runner)
        resume, load_from = runner._resume, runner._load_from
        if resume or load_from is not None:
            # the runner's loader is torch.load with weights_only=True (torch >= 2.6), which
            # refuses the message hub of a runner checkpoint unless its classes are allowed
            allow_mmengine_checkpoints()
        if resume and load_from is None:
            last = find_latest_checkpoint(runner.work_dir)   # what mmengine would resume from
            if last is not None and _is_local(last):
                runner._load_from = self._readable_or_newest(runner, last)
        elif load_from is not None and _is_local(load_from):
            if resume:
                role = 'the checkpoint to resume from (--resume PATH / resume=True, load_from)'
                todo = ('Give the path of a checkpoint of this run (epoch_N.pth / iter_N.pth in '
                        'its work dir), or --resume alone for the newest one.')
            elif isinstance(runner._train_loop, BaseLoop):
                role = 'the checkpoint to start training from (load_from)'
                todo = 'Check the path, or set load_from=None to train from the initial weights.'
            else:
                role = 'the checkpoint to test (mim test --checkpoint / tools/test.py CHECKPOINT)'
                todo = ('Check the path: a training run writes epoch_N.pth / iter_N.pth into its '
                        'work dir, and its last_checkpoint file names the newest.')
            _check_readable(load_from, role, todo)

    def _readable_or_newest(self, runner, last):
        """``last`` if it loads, else the newest checkpoint of the run that does."""
        if not osp.isfile(last):
            why = 'it does not exist'
        else:
            try:
                read_checkpoint(last)
                return last
            except RuntimeError as e:
                why = str(e).rstrip('.')
        ckpt_dir = osp.dirname(last) or runner.work_dir
        pattern = re.compile('^' + re.escape(self.filename_tmpl).replace(r'\{\}', r'(\d+)') + '$')
        steps = sorted(((int(m.group(1)), name) for name in os.listdir(ckpt_dir)
                        for m in [pattern.match(name)] if m), reverse=True)
        chosen = None
        for _, name in steps:
            path = osp.join(ckpt_dir, name)
            if osp.abspath(path) == osp.abspath(last):
                continue
            try:
                read_checkpoint(path)
                chosen = path
                break
            except (OSError, RuntimeError):
                continue
        src = osp.join(runner.work_dir, 'last_checkpoint')
        if chosen is None:
            raise RuntimeError(
                f'cannot resume: {src} names the checkpoint to resume from, {last!r}, and '
                f'{why}; no other readable checkpoint ({self.filename_tmpl.format("N")}) is in '
                f'{ckpt_dir}. Train from scratch without --resume, or pass --resume PATH.')
        kept = ''
        if osp.exists(last) and is_main_process():
            aside = _free_name(last + '.unreadable')
            os.replace(last, aside)
            kept = f' It is kept as {aside} (the resumed run will not overwrite it).'
        runner.logger.warning(
            f'{src} names {last}, which cannot be resumed from: {why}.{kept} Resuming from '
            f'{chosen} instead, the newest readable checkpoint in {ckpt_dir}.')
        return chosen

    # ------------------------------------------------------------ saving
    def _no_space_error(self, runner, ckpt_filename, previous, error):
        """The error of a save that ran out of space: where, how much, and what to do."""
        last = osp.join(runner.work_dir, 'last_checkpoint')
        intact = open(last).read().strip() if osp.isfile(last) else None
        if intact and osp.isfile(intact):
            needed, basis = osp.getsize(intact), f'the size of {osp.basename(intact)}'
        elif previous and osp.isfile(previous):
            needed, basis = osp.getsize(previous), f'the size of {osp.basename(previous)}'
        else:   # first save: the weights and optimizer state are most of a checkpoint
            sd = [runner.model.state_dict()]
            if getattr(runner, 'optim_wrapper', None) is not None:
                sd.append(runner.optim_wrapper.state_dict())
            needed, basis = _tensor_bytes(sd), 'the size of the weights and optimizer state'
        free = shutil.disk_usage(self.out_dir).free
        where = f'the work_dir {runner.work_dir}' + (
            '' if osp.abspath(self.out_dir) == osp.abspath(runner.work_dir)
            else f' (checkpoints in {self.out_dir})')
        kept = (f'{intact} (named by {last}) is intact: `--resume` continues from it'
                if intact else 'no earlier checkpoint exists: the run starts again from scratch')
        return OSError(
            error.errno,
            f'no space left to save checkpoint {ckpt_filename} in {where} '
            f'({os.strerror(error.errno)}): a checkpoint needs about '
            f'{needed} bytes ({_human(needed)}, {basis}), {free} bytes ({_human(free)}) are free. '
            f'The partial file was removed and {kept}. Free at least {needed} bytes on that '
            'file system (delete old checkpoints or other runs\' work dirs; `df -h '
            f'{self.out_dir}`), or lower max_keep_ckpts, then run again with --resume.')

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)

        # Bookkeeping as the parent does (the saved message hub must list this step), but the
        # outdated checkpoint is deleted only after the new one is safely in place.
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        previous = getattr(self, 'last_ckpt', None)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        tmp_filename = self.tmp_name(ckpt_filename)
        tmp_path = osp.join(self.out_dir, tmp_filename)
        try:
            runner.save_checkpoint(   # master_only inside: other ranks return at once
                self.out_dir,
                tmp_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
            if not is_main_process():
                return
            _fsync(tmp_path)
            os.replace(tmp_path, self.last_ckpt)
            atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        except OSError as e:
            # A half-written checkpoint is useless and, on a full disk, keeps the disk full.
            if osp.exists(tmp_path):
                os.remove(tmp_path)
            self.last_ckpt = previous
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise self._no_space_error(runner, ckpt_filename, previous, e) from e
            raise
        if outdated is not None and outdated != step:
            old = osp.join(self.out_dir, self.filename_tmpl.format(outdated))
            if osp.isfile(old):
                os.remove(old)


@HOOKS.register_module()
class MeanLossHook(Hook):
    """Log the mean of every loss / log variable over all ranks instead of rank 0's value.

    Runs before ``RuntimeInfoHook`` (priority ``HIGHEST``) and replaces the values of the
    ``outputs`` dict of ``train_step`` in place. Every rank must produce the same keys, which
    holds for mmdet / mmseg / mmpretrain models (their loss dicts have fixed keys).
    """
    priority = 'HIGHEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not outputs or not is_distributed() or get_world_size() < 2:
            return
        keys = sorted(k for k, v in outputs.items()
                      if torch.is_tensor(v) or isinstance(v, (int, float)))
        if not keys:
            return
        device = next((v.device for v in outputs.values() if torch.is_tensor(v)),
                      torch.device('cpu'))
        if torch_dist.get_backend() == 'nccl' and device.type != 'cuda':
            device = torch.device('cuda', torch.cuda.current_device())
        vals = torch.stack([torch.as_tensor(outputs[k], dtype=torch.float64, device=device)
                            .detach().reshape(()) for k in keys])
        torch_dist.all_reduce(vals)
        vals /= get_world_size()
        for k, v in zip(keys, vals.tolist()):
            old = outputs[k]
            outputs[k] = torch.tensor(v, dtype=old.dtype) if torch.is_tensor(old) else v


_PR_SET_PDEATHSIG = 1   # linux/prctl.h
_LAUNCHERS = ('mim', 'torchrun', 'torch.distributed.run', 'torch.distributed.launch')


def _cmdline(pid: int):
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return [a.decode(errors='replace') for a in f.read().split(b'\0') if a]
    except OSError:
        return []


def _launcher_name(pid: int):
    """'mim' / 'torchrun' / ... when process ``pid`` is one of those launchers, else None."""
    for arg in _cmdline(pid)[:3]:
        name = osp.basename(arg)
        if name in _LAUNCHERS:
            return name
    return None


def _die_with_parent(expected_parent: int):
    """SIGKILL this process when its parent (the thread that forked it) exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), 'prctl(PR_SET_PDEATHSIG) failed')
    if os.getppid() != expected_parent:   # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class ExitWithLauncherHook(Hook):
    """The trainer and its DataLoader workers die with the launcher (see the module docstring).

    Linux only (elsewhere a no-op that says so). Add to a config with
    ``custom_hooks = [dict(type='ExitWithLauncherHook')]``.
    """
    priority = 'VERY_HIGH'
    _armed_pid = None   # once per process

    def before_run(self, runner):
        pid = os.getpid()
        if ExitWithLauncherHook._armed_pid == pid:
            return
        parent = os.getppid()
        launcher = _launcher_name(parent)
        if not sys.platform.startswith('linux') or launcher is None:
            runner.logger.info(
                'ExitWithLauncherHook: not armed (' +
                ('not Linux' if launcher else 'the parent process is not mim or torchrun') + ')')
            return
        _die_with_parent(parent)
        # forked children (DataLoader workers, fork start method) die with this process
        os.register_at_fork(after_in_child=lambda: _die_with_parent(pid))
        ExitWithLauncherHook._armed_pid = pid
        runner.logger.info(
            f'ExitWithLauncherHook: this trainer (pid {pid}) is killed when its launcher '
            f'{launcher} (pid {parent}) dies, and its DataLoader workers when it dies '
            '(Linux PR_SET_PDEATHSIG); nothing outlives a killed run')
