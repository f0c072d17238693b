"""Put dsnet_mm's model classes into the downstream libraries' ``MODELS`` registries, and make
the config scopes (``mmseg::``) resolvable on the OneDL stack.

Each library is registered on its own and guarded with ``except Exception``: a missing library
raises ImportError, but a broken one raises anything (a torchvision built for another torch raises
RuntimeError, mmdet with the wrong mmcv raises AssertionError), and it must never stop the others.
So is each class: ``DSNet`` needs only ``<lib>.registry`` (cheap, no compiled mmcv ops), while
``DSFPN`` extends mmdet's ``FPN`` and so imports ``mmdet.models``.
"""
import importlib
import importlib.metadata
import importlib.util
import logging
import warnings

# scope -> classes that make sense there (names come from the classes themselves).
_TARGETS = {
    'mmdet': ('DSNet', 'DSFPN'),
    'mmseg': ('DSNet', 'DSFPN'),
    'mmpretrain': ('DSNet', ),
}

_registered = {}   # scope -> list of class names registered
_failed = {}       # scope -> error message


def register_all():
    """Register every class into every importable scope; idempotent."""
    from . import models
    for scope, names in _TARGETS.items():
        if scope in _registered:
            continue
        try:
            registry = importlib.import_module(f'{scope}.registry').MODELS
        except ImportError as e:
            _failed[scope] = f'{scope} is not installed ({e})'
            continue
        except Exception as e:  # a broken install: say so, keep going
            _failed[scope] = f'{scope} failed to import: {type(e).__name__}: {e}'
            warnings.warn(f'dsnet_mm: not registered in {scope}: {_failed[scope]}')
            continue
        _registered[scope], problems = [], []
        for name in names:
            try:   # DSFPN extends mmdet's FPN: it imports mmdet.models, which may be broken
                registry.register_module(module=getattr(models, name), force=True)
                _registered[scope].append(name)
            except Exception as e:
                problems.append(f'{name} not registered ({type(e).__name__}: {e})')
        if problems:
            _failed[scope] = '; '.join(problems)
            warnings.warn(f'dsnet_mm: in {scope}: {_failed[scope]}')
        else:
            _failed.pop(scope, None)


def registered_scopes():
    """``{scope: [class names]}`` for every library dsnet_mm registered into."""
    return dict(_registered)


def failed_scopes():
    """``{scope: reason}`` for every library dsnet_mm could not register into."""
    return dict(_failed)


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
