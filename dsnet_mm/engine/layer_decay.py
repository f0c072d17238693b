"""Layer-wise learning-rate decay for detectors and segmentors (``custom_imports`` entry
``'dsnet_mm.engine.layer_decay'``; needs mmpretrain).

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the model itself for
``get_layer_depth``, which only mmpretrain's classifiers have: on an mmdet detector or an mmseg
segmentor it raises ``NotImplementedError``. mmdet's own ``LearningRateDecayOptimizerConstructor``
knows only ConvNeXt. ``BackboneLayerDecayOptimWrapperConstructor`` is mmpretrain's constructor,
unchanged but for where the depths come from: the model's ``backbone.get_layer_depth(name,
'backbone.')`` (DS-Net's, or any backbone that has one), as mmpretrain's ``ImageClassifier`` does.
Everything else (``layer_decay_rate``, the decay multipliers, ``custom_keys``) is mmpretrain's.
"""
import functools
from typing import Callable, List, Optional

from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import LearningRateDecayOptimWrapperConstructor
from torch import nn


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BackboneLayerDecayOptimWrapperConstructor(LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` for models whose backbone (not
    the model) has ``get_layer_depth``: detectors and segmentors.

    A parameter's learning rate is ``lr * layer_decay_rate ** (max_layer_id - layer_id - 1)``,
    ``(layer_id, max_layer_id)`` from ``model.backbone.get_layer_depth(name, 'backbone.')``; the
    backbone puts everything outside it (neck, heads) at ``max_layer_id - 1``, the full rate.

    Config (``paramwise_cfg`` as mmpretrain's constructor reads it)::

        custom_imports = dict(imports=['dsnet_mm', 'dsnet_mm.engine.layer_decay'])
        optim_wrapper = dict(
            constructor='BackboneLayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.9, norm_decay_mult=0., bias_decay_mult=0.))
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        """Add the parameters of ``module`` to ``params`` as mmpretrain's constructor does.

        Args:
            params (List[dict]): the parameter groups, extended in place.
            module (nn.Module): the model (on the first call) or one of its submodules.
            prefix (str): the name of ``module`` in the model, with a trailing dot.
            get_layer_depth (Callable, optional): ``name -> (layer_id, max_layer_id)``; None on
                the first call: taken from the model, or else from its backbone.
        """
        if get_layer_depth is None and not hasattr(module, 'get_layer_depth'):
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise NotImplementedError(
                    f'layer-wise learning-rate decay needs a get_layer_depth method on the model '
                    f'({type(module).__name__}) or on its backbone '
                    f'({type(backbone).__name__ if backbone is not None else "none"}); DSNet, '
                    "mmpretrain's ConvNeXt, Swin Transformer and ViT have one")
            get_layer_depth = functools.partial(backbone.get_layer_depth, prefix='backbone.')
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)
