"""Put dsnet_mm's model classes into the downstream libraries' ``MODELS`` registries.

Each library is registered on its own and guarded with ``except Exception``: a missing library
raises ImportError, but a broken one raises anything (a torchvision built for another torch raises
RuntimeError, mmdet with the wrong mmcv raises AssertionError), and it must never stop the others.
So is each class: ``DSNet`` needs only ``<lib>.registry`` (cheap, no compiled mmcv ops), while
``DSFPN`` extends mmdet's ``FPN`` and ``DetMaskTTAModel`` its ``DetTTAModel``, and so import
``mmdet.models``.
"""
import importlib
import warnings

# scope -> classes that make sense there (names come from the classes themselves).
_TARGETS = {
    'mmdet': ('DSNet', 'DSFPN', 'DetMaskTTAModel'),   # the last: `--tta` of the detectors
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
