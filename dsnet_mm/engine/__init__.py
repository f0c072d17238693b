"""Training-loop helpers for mmengine runners (registered in mmengine's root registries, so every
downstream scope finds them). Configs import them with
``custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)``.

* ``AtomicCheckpointHook``: checkpoints are never half-written.
* ``MeanLossHook``: logged losses are the mean over ranks, not rank 0's.
* ``DeviceAwareDDP`` + :func:`enable_cpu_distributed`: ``--launcher pytorch`` on CPUs (gloo).
* ``BF16OptimWrapper``: bfloat16 autocast training, on a CPU too (``AmpOptimWrapper`` needs a GPU).
"""
from .amp import BF16OptimWrapper
from .dist import DeviceAwareDDP, enable_cpu_distributed
from .hooks import AtomicCheckpointHook, MeanLossHook

enable_cpu_distributed()

__all__ = ['AtomicCheckpointHook', 'MeanLossHook', 'DeviceAwareDDP', 'enable_cpu_distributed',
           'BF16OptimWrapper']
