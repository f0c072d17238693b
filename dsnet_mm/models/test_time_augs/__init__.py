from .det_tta import DetMaskTTAModel

__all__ = ['DetMaskTTAModel']
