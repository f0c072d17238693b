from .dsnet import DSNet, set_fused_attn
from .dsnet_checkpoint import checkpoint_filter_fn

__all__ = ['DSNet', 'checkpoint_filter_fn', 'set_fused_attn']
