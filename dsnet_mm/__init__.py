"""DS-Net for OpenMMLab. ``import dsnet_mm`` (or ``custom_imports``) registers ``DSNet`` and
``DSFPN`` in the mmdet, mmseg and mmpretrain ``MODELS`` registries."""
try:
    import mmengine  # noqa: F401
except ImportError as e:   # setup.py cannot name it: its distribution differs between the stacks
    raise ImportError(
        'dsnet_mm needs an OpenMMLab stack: upstream (mmengine, mmcv, mmdet, ...) or OneDL '
        '(onedl-mmengine, onedl-mmcv, onedl-mmdetection, ...). Set one up with '
        '`bash tools/setup_env.sh` or `STACK=onedl bash tools/setup_env.sh` (pins in '
        'requirements/stacks/), or pip install mmengine / onedl-mmengine into this '
        'environment.') from e

from .registry import fix_config_scopes as _fix_config_scopes
from .registry import register_all as _register_all
from .utils.checkpoint import allow_mmengine_checkpoints as _allow_mmengine_checkpoints
from .version import __version__

_register_all()
# OneDL: `mmseg::` bases resolve to onedl-mmsegmentation (no-op on upstream)
_fix_config_scopes()
# runner checkpoints (--resume) load under torch's default weights_only=True
_allow_mmengine_checkpoints()

__all__ = ['__version__']
