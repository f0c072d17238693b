from mmcv.cnn.bricks import DropPath

from .checkpoint import (check_conversion_paths, check_state_dict_fits, extract_state_dict,
                         read_checkpoint, save_checkpoint_atomic)
from .safe_load import allow_mmengine_checkpoints, load_pdparams, read_checkpoint_file

__all__ = [
    'DropPath', 'allow_mmengine_checkpoints', 'check_conversion_paths', 'check_state_dict_fits',
    'extract_state_dict', 'load_pdparams', 'read_checkpoint', 'read_checkpoint_file',
    'save_checkpoint_atomic'
]
