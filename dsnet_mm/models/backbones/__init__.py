from .dsnet import DSNet, checkpoint_filter_fn, set_fused_attn

__all__ = ['DSNet', 'checkpoint_filter_fn', 'set_fused_attn']
