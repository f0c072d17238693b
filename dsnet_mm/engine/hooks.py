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
    the next save of that step replaces.

``MeanLossHook``
    mmengine's ``BaseModel.parse_losses`` does not reduce across processes (mmcv 1.x did), and
    only rank 0 logs, so the logged losses are rank 0's alone. This hook all-reduces the
    ``log_vars`` of every iteration (one collective for all of them) and divides by the world
    size before ``RuntimeInfoHook`` puts them in the message hub, so logs, ``scalars.json`` and
    the checkpointed history hold the mean over ranks. Gradients are unaffected (DDP already
    averages them). Single-process runs are untouched.
"""
import os
import os.path as osp

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size, is_distributed, is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str, text: str):
    """Write ``text`` to ``path`` so that readers see the old or the new content, never a part."""
    tmp = osp.join(osp.dirname(path) or '.', f'.{osp.basename(path)}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints are never half-written (see the module docstring).

    Same arguments as ``CheckpointHook``. Applies to local directories; for other storage
    backends (``backend_args`` with a remote prefix) it behaves exactly like the parent.
    """

    @staticmethod
    def tmp_name(filename: str) -> str:
        return f'.{filename}.tmp'

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
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        tmp_filename = self.tmp_name(ckpt_filename)
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
        tmp_path = osp.join(self.out_dir, tmp_filename)
        _fsync(tmp_path)
        os.replace(tmp_path, self.last_ckpt)
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)

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
