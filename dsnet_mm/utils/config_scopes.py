"""Make ``mmseg::`` base configs resolvable on the OneDL stack: imported by the configs that need
it (``configs/ade20k/_base_/dsnet_mmseg.py``), which it fixes as it is imported.

mmengine reads ``_base_`` entries before ``custom_imports``, so a config whose bases are
``mmseg::...`` imports this module in a base listed before them. ``import dsnet_mm`` does not
apply it: the change is to mmengine's table, and only those configs need it.
"""
import importlib.metadata
import importlib.util
import logging


def _distribution_installed(name):
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _resolvable(package):
    """What mmengine accepts for a scope's package: a distribution, or else a module, of that name."""
    return _distribution_installed(package) or importlib.util.find_spec(package) is not None


def fix_config_scopes():
    """Point each config scope whose upstream distribution is absent at its OneDL distribution.

    mmengine finds a ``scope::`` base config in the package that ``MODULE2PACKAGE`` names for the
    scope (``mmseg`` -> ``mmsegmentation``). OneDL's mmengine keeps upstream's table, and OneDL ships
    mmseg as ``onedl-mmsegmentation``, so every ``mmseg::`` base fails there with "mmsegmentation is
    not installed" (``mmdet::`` and ``mmpretrain::`` work: their table entry is the import name,
    which mmengine also finds as a module). Only entries that resolve neither way while
    ``onedl-<name>`` is installed change; upstream nothing does. The table is mmengine's own dict,
    so its registry and inferencer messages name the right package too. Idempotent; logged at
    DEBUG level (scripts read values from configs on stdout); ``tools/check_env.py`` shows it.
    Applied when this module is imported.

    Returns:
        dict: ``{scope: (old package, new package)}`` changed by this call.
    """
    try:
        from mmengine.config.utils import MODULE2PACKAGE
    except ImportError:
        return {}
    changed = {}
    for scope, package in list(MODULE2PACKAGE.items()):
        onedl = f'onedl-{package}'
        if not _resolvable(package) and _distribution_installed(onedl):
            MODULE2PACKAGE[scope] = onedl
            changed[scope] = (package, onedl)
    if changed:
        from mmengine.logging import print_log
        print_log('dsnet_mm: config scopes ' + ', '.join(
            f'{s}:: -> {new} (mmengine names {old})' for s, (old, new) in changed.items()),
            logger='current', level=logging.DEBUG)
    return changed


fix_config_scopes()
