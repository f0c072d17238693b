from .backbones import DSNet

__all__ = ['DSNet', 'DSFPN']


def __getattr__(name):
    # DSFPN extends mmdet's FPN: imported on first use, so DSNet (mmpretrain) needs no mmdet
    if name == 'DSFPN':
        from .necks import DSFPN
        return DSFPN
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
