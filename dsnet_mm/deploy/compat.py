"""Compatibility layer between mmdeploy 1.3.1 and torch 2.13, applied before mmdeploy is used.

    from dsnet_mm.deploy import apply_compat
    for line in apply_compat():      # idempotent; returns what it patched (and why)
        print('[compat]', line)
    import mmdeploy.apis ...

mmdeploy 1.3.1 was written for torch <= 2.1. Two things it relies on are gone in torch 2.13; each
patch below restores exactly that and nothing else:

1. ``torch.onnx.export`` defaults to ``dynamo=True`` since torch 2.9 (the torch.export-based
   exporter, which needs ``onnxscript`` and ignores mmdeploy's TorchScript rewriters and custom
   symbolics). mmdeploy calls ``torch.onnx.export(...)`` without ``dynamo=``, so a call without it
   is given ``dynamo=False``: the TorchScript exporter, the one mmdeploy's rewriting is built on.
   A caller that passes ``dynamo=`` explicitly gets what it asked for.
2. ``torch.onnx.symbolic_opset9._cast_Long`` was removed (torch 2.x dropped the generated
   ``_cast_<Type>`` helpers). mmdeploy's RoIAlign symbolic for ONNX Runtime imports it to cast the
   RoIs' batch column to int64 (the ``batch_indices`` input of ONNX ``RoiAlign``). The patch adds
   it back with the old meaning: ``Cast(input, to=INT64)``.

Nothing here changes what torch computes; both patches only affect ONNX export.
"""
import functools

import torch

_PATCHED = []


def _patch_export_default_torchscript():
    import torch.onnx
    export = torch.onnx.export
    if getattr(export, '_dsnet_mm_compat', False):
        return None

    @functools.wraps(export)
    def export_torchscript_by_default(*args, **kwargs):
        kwargs.setdefault('dynamo', False)
        return export(*args, **kwargs)

    export_torchscript_by_default._dsnet_mm_compat = True
    torch.onnx.export = export_torchscript_by_default
    return ('torch.onnx.export: dynamo=False unless given (torch >= 2.9 defaults to the dynamo '
            'exporter; mmdeploy needs the TorchScript one)')


def _patch_cast_long():
    import torch.onnx.symbolic_opset9 as opset9
    if hasattr(opset9, '_cast_Long'):
        return None

    def _cast_Long(g, input, non_blocking):   # noqa: N802  (the removed torch name)
        """The removed torch helper: ``Cast(input, to=INT64)`` (``non_blocking`` is unused)."""
        return g.op('Cast', input, to_i=torch._C._onnx.TensorProtoDataType.INT64)

    opset9._cast_Long = _cast_Long
    return ('torch.onnx.symbolic_opset9._cast_Long: restored (removed from torch; mmdeploy\'s '
            'RoIAlign symbolic imports it)')


def apply_compat():
    """Apply every patch that is needed and not yet applied; return one line per patch applied.

    Safe to call more than once: a second call applies nothing and returns ``[]``. The list of all
    patches applied in this process is :func:`applied`.
    """
    done = []
    for patch in (_patch_export_default_torchscript, _patch_cast_long):
        line = patch()
        if line:
            done.append(line)
    _PATCHED.extend(done)
    return done


def applied():
    """Every patch applied in this process so far (one line each)."""
    return list(_PATCHED)
