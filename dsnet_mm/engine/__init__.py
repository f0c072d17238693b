"""Training-loop helpers for mmengine runners (registered in mmengine's root registries, so every
downstream scope finds them). Configs import them with
``custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine'], allow_failed_imports=False)``.

* ``AtomicCheckpointHook``: checkpoints are never half-written.
* ``MeanLossHook``: logged losses are the mean over ranks, not rank 0's.
* ``ExitWithLauncherHook``: nothing outlives a killed ``mim train`` (trainer, DataLoader workers).
* ``DeviceAwareDDP`` + ``dsnet_mm.engine.cpu_distributed`` (a separate ``custom_imports``
  entry): ``--launcher pytorch`` on CPUs (gloo).
* ``BF16OptimWrapper``: bfloat16 autocast training, on a CPU too (``AmpOptimWrapper`` needs a GPU).
* ``BackboneLayerDecayOptimWrapperConstructor`` (``dsnet_mm.engine.layer_decay``, a separate
  ``custom_imports`` entry: it needs mmpretrain): layer-wise lr decay for detectors and segmentors.

Importing this package changes nothing in mmengine; it only registers these classes.
"""
from .amp import BF16OptimWrapper
from .dist import DeviceAwareDDP, init_cpu_process_group
from .hooks import AtomicCheckpointHook, ExitWithLauncherHook, MeanLossHook

__all__ = ['AtomicCheckpointHook', 'ExitWithLauncherHook', 'MeanLossHook', 'DeviceAwareDDP',
           'init_cpu_process_group', 'BF16OptimWrapper']
