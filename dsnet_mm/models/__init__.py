from .backbones import DSNet, checkpoint_filter_fn, set_fused_attn

__all__ = ['DSNet', 'DSFPN', 'checkpoint_filter_fn', 'set_fused_attn']


def __getattr__(name):
    # DSFPN extends mmdet's FPN: imported on first use, so DSNet (mmpretrain) needs no mmdet
    if name == 'DSFPN':
        from .necks import DSFPN
        return DSFPN
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
