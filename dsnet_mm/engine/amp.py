"""bfloat16 mixed precision that also runs on a CPU.

mmengine's ``AmpOptimWrapper`` (what ``--amp`` selects) refuses to start without a GPU / NPU /
MLU / MUSA. ``BF16OptimWrapper`` is a separate optimizer wrapper a config opts into: the forward
pass of each training step runs under ``torch.autocast(<device>, dtype=torch.bfloat16)``; weights,
gradients and the optimizer state stay float32. bfloat16 has float32's exponent range, so no loss
scaling is needed (and none is done).

    optim_wrapper = dict(type='BF16OptimWrapper', optimizer=...)
    # or: mim train mmdet CONFIG --cfg-options optim_wrapper.type=BF16OptimWrapper

On a CPU, mmcv's ``nms`` and ``RoIAlign`` kernels only take float32 (their CUDA kernels also take
half); while the wrapper's autocast is active they are fed float32 copies
(:func:`mmcv_cpu_ops_in_float32`), so two-stage detectors train too.
"""
import contextlib
import sys

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _needs_upcast(t):
    return isinstance(t, torch.Tensor) and t.device.type == 'cpu' and t.dtype in _LOW_PRECISION


@contextlib.contextmanager
def mmcv_cpu_ops_in_float32():
    """While active, mmcv's ``nms`` and ``roi_align`` compute float16 / bfloat16 CPU inputs in
    float32 and return the input dtype (their CPU kernels accept float32 only). Other inputs
    pass through unchanged; everything is restored on exit."""
    import mmcv.ops  # noqa: F401  (loads the submodules)
    nms_mod, roi_mod = sys.modules['mmcv.ops.nms'], sys.modules['mmcv.ops.roi_align']
    real_nms, real_roi_align = nms_mod.nms, roi_mod.roi_align

    def nms(boxes, scores, *args, **kwargs):
        if not (_needs_upcast(boxes) or _needs_upcast(scores)):
            return real_nms(boxes, scores, *args, **kwargs)
        dets, keep = real_nms(boxes.float(), scores.float(), *args, **kwargs)
        return dets.to(boxes.dtype), keep

    def roi_align(input, rois, *args, **kwargs):
        if not (_needs_upcast(input) or _needs_upcast(rois)):
            return real_roi_align(input, rois, *args, **kwargs)
        return real_roi_align(input.float(), rois.float(), *args, **kwargs).to(input.dtype)

    nms_mod.nms, roi_mod.roi_align = nms, roi_align
    try:
        yield
    finally:
        nms_mod.nms, roi_mod.roi_align = real_nms, real_roi_align


@OPTIM_WRAPPERS.register_module()
class BF16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose training forward runs under bfloat16 autocast on the runner's
    device (CPU included). Checkpoints hold the usual float32 weights and optimizer state, so a
    run resumes with or without it.

    Args:
        device_type (str, optional): autocast device; defaults to mmengine's ``get_device()``
            (``'cuda'`` when a GPU is visible, else ``'cpu'``).
        **kwargs: as :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, *args, device_type=None, **kwargs):
        super().__init__(*args, **kwargs)
        if device_type is None:
            from mmengine.device import get_device
            device_type = get_device()
        self.device_type = device_type

    @contextlib.contextmanager
    def optim_context(self, model):
        with contextlib.ExitStack() as stack:
            stack.enter_context(super().optim_context(model))
            stack.enter_context(torch.autocast(device_type=self.device_type, dtype=torch.bfloat16))
            if self.device_type == 'cpu':
                stack.enter_context(mmcv_cpu_ops_in_float32())
            yield
