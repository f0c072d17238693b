"""DS-Net for OpenMMLab. ``import dsnet_mm`` (or ``custom_imports``) registers ``DSNet`` and
``DSFPN`` in the mmdet, mmseg and mmpretrain ``MODELS`` registries (and ``DetMaskTTAModel``, the
detectors' test-time augmentation, in mmdet's), and does nothing else.

What some runs need besides is applied where it is needed: the OneDL ``mmseg::`` config scope by
the ADE20K configs (``dsnet_mm.utils.config_scopes``), torch's ``weights_only`` allow-list for
mmengine runner checkpoints by what loads them (``dsnet_mm.utils.allow_mmengine_checkpoints``:
``AtomicCheckpointHook`` before a resume / load, and dsnet_mm's own checkpoint reader).
"""
try:
    import mmengine  # noqa: F401
except ImportError as e:   # setup.py cannot name it: its distribution differs between the stacks
    raise ImportError(
        'dsnet_mm needs an OpenMMLab stack: upstream (mmengine, mmcv, mmdet, ...) or OneDL '
        '(onedl-mmengine, onedl-mmcv, onedl-mmdetection, ...). Set one up with '
        '`bash tools/setup_env.sh` or `STACK=onedl bash tools/setup_env.sh` (pins in '
        'requirements/stacks/), or pip install mmengine / onedl-mmengine into this '
        'environment.') from e

from .registry import register_all as _register_all
from .version import __version__

_register_all()

__all__ = ['__version__']
