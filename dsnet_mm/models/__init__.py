from .backbones import DSNet
from .necks import DSFPN

__all__ = ['DSNet', 'DSFPN']
