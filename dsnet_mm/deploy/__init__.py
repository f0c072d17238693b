"""Deployment helpers (mmdeploy -> ONNX -> ONNX Runtime). See README, "Deployment".

Only :mod:`dsnet_mm.deploy.compat` lives here: it needs torch alone, so it can be applied before
mmdeploy is imported. The tools are in ``tools/deploy/``; they run in ``.venv-deploy``
(``bash tools/deploy/setup_deploy_env.sh``), where mmdeploy is installed.
"""
from .compat import apply_compat

__all__ = ['apply_compat']
