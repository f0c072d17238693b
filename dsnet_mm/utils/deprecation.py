"""Renamed arguments and methods keep working for one release, with a warning that names the
new spelling."""
import logging
import warnings

from mmengine.logging import print_log


def warn_deprecated(owner: str, old: str, new: str):
    """``DeprecationWarning`` for code and tests, and a log line for runs driven by a config
    (Python hides ``DeprecationWarning`` outside ``__main__``)."""
    msg = (f'{owner}: {old} is deprecated and will be removed in the next release of dsnet_mm; '
           f'use {new}')
    warnings.warn(msg, DeprecationWarning, stacklevel=3)
    print_log(msg, logger='current', level=logging.WARNING)


def renamed_argument(owner: str, old: str, old_value, new: str, new_value, new_default):
    """The value of an argument renamed from ``old`` to ``new``: ``old_value`` (with a warning)
    when the old name was given (not None), else ``new_value``. Giving both is an error."""
    if old_value is None:
        return new_value
    if new_value != new_default:
        raise TypeError(f'{owner}: {old} is the deprecated name of {new}; give only {new}')
    warn_deprecated(owner, f'the argument {old}', new)
    return old_value
