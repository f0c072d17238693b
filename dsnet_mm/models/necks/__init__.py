from .dsfpn import DSFPN

__all__ = ['DSFPN']
