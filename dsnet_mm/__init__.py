"""DS-Net for OpenMMLab. ``import dsnet_mm`` (or ``custom_imports``) registers ``DSNet`` and
``DSFPN`` in the mmdet, mmseg and mmpretrain ``MODELS`` registries."""
from .version import __version__
from .registry import register_all as _register_all

_register_all()
from .utils.checkpoint import allow_mmengine_checkpoints as _allow; _allow()  # resume under weights_only

__all__ = ['__version__']
