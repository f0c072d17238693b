from .backbones import DSNet, checkpoint_filter_fn, set_fused_attn

__all__ = ['DSNet', 'DSFPN', 'DetMaskTTAModel', 'checkpoint_filter_fn', 'set_fused_attn']


def __getattr__(name):
    # DSFPN extends mmdet's FPN: imported on first use, so DSNet (mmpretrain) needs no mmdet
    if name == 'DSFPN':
        from .necks import DSFPN
        return DSFPN
    if name == 'DetMaskTTAModel':   # extends mmdet's DetTTAModel: imported on first use too
        from .test_time_augs import DetMaskTTAModel
        return DetMaskTTAModel
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
