"""Multi-process training on CPUs (gloo) with mmengine 0.10.7, without changing mmengine.

mmengine assumes one GPU per process in two places, so ``--launcher pytorch`` dies on a CPU-only
machine before the first iteration:

* ``mmengine.dist.utils._init_dist_pytorch`` calls ``torch.cuda.set_device(local_rank)``
  unconditionally ("Found no NVIDIA driver"). But the runner initialises the process group only
  ``if not is_distributed()``. A config that lists ``dsnet_mm.engine.cpu_distributed`` in its
  ``custom_imports`` (executed when the config is read, before the runner exists) gets the gloo
  process group initialised there, on a machine without CUDA in a process started by torchrun,
  and the runner uses it as it is. Nothing else changes, and with CUDA nothing happens.
* ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP, which refuses it for a module
  on the CPU. ``DeviceAwareDDP`` (set ``model_wrapper_cfg=dict(type='DeviceAwareDDP')``, as the
  embedded config does) drops ``device_ids`` for CPU modules and is ``MMDistributedDataParallel``
  otherwise.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.logging import print_log
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


def init_cpu_process_group(backend: str = 'gloo') -> bool:
    """Initialise the process group of a torchrun-launched process on a machine without CUDA
    (see the module docstring). Returns whether it did; idempotent."""
    launched = all(k in os.environ for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'))
    if not launched or torch.cuda.is_available() or not torch_dist.is_available() \
            or torch_dist.is_initialized():
        return False
    rank, world_size = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    torch_dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    print_log(f'dsnet_mm.engine.cpu_distributed: no CUDA here, so the {backend} process group '
              f'(rank {rank} of {world_size}) was initialised before the runner, which uses it '
              "instead of calling torch.cuda.set_device in mmengine's init_dist", logger='current')
    return True
