from .dsnet import DSNet

__all__ = ['DSNet']
