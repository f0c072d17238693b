"""Deployment (mmdeploy -> ONNX -> ONNX Runtime). See docs/deployment.md.

:mod:`.compat` (torch alone) is applied before mmdeploy is imported; :mod:`.onnx_export` (mmdeploy's
``torch2onnx``) and :mod:`.pytorch_model` (mmdeploy's rewritten model run in PyTorch) import
mmdeploy when called. The tools are in ``tools/deploy/``; they run in ``.venv-deploy``
(``bash tools/deploy/setup_deploy_env.sh``), where mmdeploy is installed.
"""
from .compat import apply_compat
from .onnx_export import export_onnx

__all__ = ['apply_compat', 'export_onnx']
