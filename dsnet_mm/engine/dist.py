"""Multi-process training on CPUs (gloo) with mmengine 0.10.7.

mmengine assumes one GPU per process in two places, so ``--launcher pytorch`` dies on a CPU-only
machine before the first iteration:

* ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device(local_rank)``
  unconditionally ("Found no NVIDIA driver"). :func:`enable_cpu_distributed` (run when
  ``dsnet_mm.engine`` is imported, i.e. from the configs' ``custom_imports``, which mmengine
  executes before it initialises the process group) swaps in a version that skips that call
  when CUDA is not available. With CUDA nothing changes.
* ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP, which refuses it for a module
  on the CPU. ``DeviceAwareDDP`` (set ``model_wrapper_cfg=dict(type='DeviceAwareDDP')``, as the
  embedded config does) drops ``device_ids`` for CPU modules and is ``MMDistributedDataParallel``
  otherwise.
"""
import os

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAwareDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also works for CPU modules (gloo)."""

    def __init__(self, module, device_ids=None, **kwargs):
        kwargs.setdefault('broadcast_buffers', False)     # mmengine's default wrapper setting
        kwargs.setdefault('find_unused_parameters', False)
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
            kwargs.pop('output_device', None)
        super().__init__(module=module, device_ids=device_ids, **kwargs)


_PATCHED = False


def enable_cpu_distributed():
    """Let ``init_dist('pytorch')`` work without CUDA (see the module docstring). Idempotent."""
    global _PATCHED
    if _PATCHED:
        return
    import mmengine.dist.utils as dist_utils
    original = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if torch.cuda.is_available() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        if backend == 'nccl':
            raise RuntimeError('the nccl backend needs GPUs; on CPUs set '
                               "env_cfg = dict(dist_cfg=dict(backend='gloo')) in the config")
        torch.distributed.init_process_group(
            backend=backend, rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']), **kwargs)

    dist_utils._init_dist_pytorch = _init_dist_pytorch
    _PATCHED = True
