"""DS-Net for OpenMMLab. ``import dsnet_mm`` (or ``custom_imports``) registers ``DSNet`` and
``DSFPN`` in the mmdet, mmseg and mmpretrain ``MODELS`` registries."""
from .registry import register_all as _register_all
from .utils.checkpoint import allow_mmengine_checkpoints as _allow_mmengine_checkpoints
from .version import __version__

_register_all()
# runner checkpoints (--resume) load under torch's default weights_only=True
_allow_mmengine_checkpoints()

__all__ = ['__version__']
