from mmcv.cnn.bricks import DropPath

from .checkpoint import (allow_mmengine_checkpoints, check_conversion_paths,
                         check_state_dict_fits, extract_state_dict, load_checkpoint_strict,
                         load_pdparams, read_checkpoint, save_checkpoint_atomic)

__all__ = [
    'DropPath', 'allow_mmengine_checkpoints', 'check_conversion_paths', 'check_state_dict_fits',
    'extract_state_dict', 'load_checkpoint_strict', 'load_pdparams', 'read_checkpoint',
    'save_checkpoint_atomic'
]
