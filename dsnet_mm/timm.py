"""DS-Net in timm: ``import dsnet_mm.timm`` registers ``dsnet_tiny``, ``dsnet_small`` and
``dsnet_base`` in timm's model registry (``timm.create_model('dsnet_small', pretrained=True)``).

timm is optional (``pip install "dsnet_mm[timm]"``): ``import dsnet_mm`` never imports it. timm
1.0 finds no models through package entry points, so this import is what registers them; in an
OpenMMLab config, ``custom_imports=dict(imports=['dsnet_mm', 'dsnet_mm.timm', 'mmpretrain.models'])``
before ``type='mmpretrain.TIMMBackbone'``.
"""
from .models.backbones.dsnet_timm import (DSNetTimm, dsnet_base, dsnet_small, dsnet_tiny,
                                          pretrained_filter_fn)

__all__ = ['DSNetTimm', 'dsnet_base', 'dsnet_small', 'dsnet_tiny', 'pretrained_filter_fn']
