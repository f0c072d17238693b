"""Reading checkpoint files without running code from them.

The reader is chosen by a file's bytes, not its name: torch.save's formats go to torch's
``weights_only`` loader, any other pickle (PaddleClas ``.pdparams``) to an unpickler that builds
numpy arrays and nothing else. A file either cannot read is named with what stopped it: corrupt
bytes, or the objects safe loading refuses. ``allow_mmengine_checkpoints`` adds to torch's
allow-list exactly what mmengine runner checkpoints pickle; what loads them calls it.
"""
import os.path as osp
import pickle
import pickletools
import re
import zipfile
from collections import OrderedDict

import torch


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for PaddleClas ``.pdparams``: a pickled dict of numpy arrays. Nothing but numpy
    array reconstruction is allowed, so a malicious file cannot run code."""
    _ALLOWED = {
        ('numpy', 'ndarray'), ('numpy', 'dtype'),
        ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
        ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
        ('collections', 'OrderedDict'),
        ('_codecs', 'encode'),   # protocol-2 pickles store array bytes through it
    }

    @classmethod
    def allows(cls, module, name):
        return (module, name) in cls._ALLOWED or (module.startswith('numpy')
                                                 and name.endswith('DType'))

    def find_class(self, module, name):
        if self.allows(module, name):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f'{module}.{name} is not allowed in a .pdparams file '
                                     '(a plain pickle: only numpy arrays are)')


def load_pdparams(path) -> 'OrderedDict[str, torch.Tensor]':
    """Read a PaddleClas ``.pdparams`` file (a plain pickle of numpy arrays) without Paddle:
    numpy arrays -> torch tensors. Entries that are not arrays (``paddle.save`` adds
    ``StructuredToParameterName@@``, a dict of names) are dropped."""
    import numpy as np
    with open(path, 'rb') as f:
        obj = _NumpyOnlyUnpickler(f).load()
    if not isinstance(obj, dict):
        raise ValueError(f'{path}: expected a dict of arrays, found {type(obj).__name__}')
    out = OrderedDict()
    for k, v in obj.items():
        if isinstance(v, np.ndarray):
            out[k] = torch.from_numpy(np.ascontiguousarray(v))
        elif isinstance(v, (np.generic, int, float)):
            out[k] = torch.as_tensor(v)
    return out


# torch.save's legacy (non-zip) format starts with its magic number, pickled with protocol 2.
_TORCH_LEGACY_MAGIC = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'


def _is_torch_file(path: str) -> bool:
    """Whether ``path`` is in one of torch.save's formats (zip, or legacy magic number), judged
    by its bytes: a file's name says nothing (PaddleClas weights saved as ``.pth``, ``.PDPARAMS``).
    A zip cut short has no central directory but still starts with a local file header."""
    with open(path, 'rb') as f:
        head = f.read(len(_TORCH_LEGACY_MAGIC))
    return head.startswith((b'PK\x03\x04', _TORCH_LEGACY_MAGIC)) or zipfile.is_zipfile(path)


def _pickle_globals(path: str):
    """The ``(module, name)`` globals plain pickle ``path`` names, read opcode by opcode without
    executing anything; None when the bytes are not a complete pickle (corrupt, not unsafe)."""
    names, strings = [], []
    try:
        with open(path, 'rb') as f:
            for op, arg, _ in pickletools.genops(f):
                if op.name in ('SHORT_BINUNICODE', 'BINUNICODE', 'UNICODE'):
                    strings.append(arg)
                elif op.name == 'GLOBAL':
                    names.append(tuple(arg.split(' ', 1)))
                elif op.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    names.append((strings[-2], strings[-1]))
    except Exception:   # random bytes, or a pickle cut short
        return None
    return list(dict.fromkeys(names))


def _plain_pickle_refused(path: str, msg: str):
    """The globals of plain pickle ``path`` the numpy-only unpickler refuses; [] when the bytes
    are not a complete pickle (corrupt, not unsafe)."""
    names = _pickle_globals(path)
    if names is None:
        return []
    refused = [f'{m}.{n}' for m, n in names if not _NumpyOnlyUnpickler.allows(m, n)]
    return refused or re.findall(r'(\S+) is not allowed', msg)


# torch's weights_only unpickler names a refused object in these messages (zip and legacy
# files); everything else it raises is about bytes it cannot parse.
_REFUSED_GLOBAL_RE = re.compile(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)')
_TORCH_BOILERPLATE = ('Weights only load failed', 'In PyTorch 2.6', 'Please file an issue',
                      'Check the documentation', '(1)', '(2)', 'This file can still be loaded')


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint file is whole but holds objects safe loading refuses (named in the message);
    reading it again, or downloading it again, cannot help."""


def _refused_globals(path: str, msg: str):
    """The ``module.name`` globals safe loading refused, [] when the file is not a pickle that
    names one (corrupt bytes, a truncated zip, another format)."""
    found = _REFUSED_GLOBAL_RE.findall(msg) or re.findall(r"(\S+) is not allowed", msg)
    if found or zipfile.is_zipfile(path):
        return found
    # A plain (non-zip) pickle: torch's legacy reader stops at the first opcode it does not
    # support (e.g. protocol 4's FRAME) before it reaches the globals.
    names = _pickle_globals(path) or []
    return [f'{m}.{n}' for m, n in names if m.split('.')[0] not in ('torch', 'collections')]


def _torch_complaint(msg: str) -> str:
    """The line of torch's error that says what went wrong, without its boilerplate."""
    for line in msg.splitlines():
        line = line.strip().replace('WeightsUnpickler error:', '').strip()
        if line and not line.startswith(_TORCH_BOILERPLATE):
            return line
    return msg.splitlines()[0] if msg else ''


def read_checkpoint_file(path: str, map_location='cpu'):
    """Read local file ``path`` with the safe reader its content calls for: torch's
    ``weights_only`` loader for torch.save's formats, the numpy-only unpickler for any other
    pickle (PaddleClas ``.pdparams``). Raises ``RuntimeError`` naming the file when it cannot be
    read (truncated, corrupt, not a checkpoint) or holds objects neither reader allows."""
    torch_file = _is_torch_file(path)
    try:
        if torch_file:
            allow_mmengine_checkpoints()   # runner checkpoints (message hub) load with weights_only
            return torch.load(path, map_location=map_location, weights_only=True)
        return load_pdparams(path)
    except MemoryError:
        raise
    except Exception as e:  # the unpickler raises anything on garbage (IndexError, KeyError...)
        msg = str(e)
        refused = (_refused_globals(path, msg) if torch_file
                   else _plain_pickle_refused(path, msg))
        if refused:
            raise UnsafeCheckpointError(
                f'refusing to unpickle {path!r}: it holds Python objects that safe loading does '
                f'not allow: {", ".join(refused)}. Only tensors, numpy arrays and mmengine\'s own '
                'checkpoint classes are loaded; if you trust the file, load it with '
                'torch.load(weights_only=False) or pickle and re-save just its tensors with '
                'torch.save.') from e
        raise RuntimeError(
            f'cannot read checkpoint {path!r} ({osp.getsize(path)} bytes): the file is '
            'truncated, corrupt or not a PyTorch checkpoint (an interrupted save or copy?); '
            f'the reader stopped at: {type(e).__name__}: {_torch_complaint(msg)}. Re-create '
            'or re-download it, or use an earlier checkpoint.') from e


# ------------------------------------------------------------------ mmengine checkpoints and weights_only

_SAFE_GLOBALS_DONE = False


_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """Stands in for ``builtins.getattr`` while ``torch.load(weights_only=True)`` unpickles.

    ``HistoryBuffer.__getstate__`` pickles its statistics methods, which pickle protocol 2 writes
    as ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would open every
    attribute of every allowed class (a path to arbitrary code); this allows exactly those
    lookups: a statistics method of ``HistoryBuffer``.
    """
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer
    known = set(_HISTORY_BUFFER_STATISTICS) | set(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and isinstance(name, str) and name in known \
            and not name.startswith('_'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({getattr(obj, "__name__", type(obj).__name__)}, {name!r}) is not allowed in a '
        'checkpoint (only HistoryBuffer statistics methods are)')


def mmengine_checkpoint_globals():
    """The classes and functions, beyond torch's own, that an mmengine runner checkpoint pickles.

    Found by listing the GLOBAL opcodes of real ``epoch_N.pth`` files (tests/test_resume.py
    checks the list against a fresh one): the message hub's ``HistoryBuffer``, its statistics
    methods (pickled as ``getattr(HistoryBuffer, 'min')``: allowed through
    :func:`_history_buffer_getattr`, not the real ``getattr``), and the numpy arrays and scalars
    it keeps (``ndarray`` via ``_reconstruct``, ``scalar``, ``dtype``). numpy >= 1.25 pickles a
    dtype as ``dtype('f8', ...)`` plus a BUILD of its state, and torch only BUILDs allow-listed
    types, so the numeric dtype classes (``Float64DType``, ``Int64DType``, ...) are allowed too;
    a dtype class only describes a type, and non-numeric ones (object, string) are left out.
    Entries are classes / functions, or ``(function, 'module.name')`` pairs (torch's form for a
    stand-in).
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    try:   # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    safe = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'), np.ndarray, np.dtype,
            _reconstruct, scalar]
    dtypes = getattr(np, 'dtypes', None)   # numpy >= 1.25: dtype('f8') is a Float64DType
    if dtypes is not None:
        numeric = ('Bool', 'Int8', 'UInt8', 'Int16', 'UInt16', 'Int32', 'UInt32', 'Int64',
                   'UInt64', 'LongLong', 'ULongLong', 'Float16', 'Float32', 'Float64',
                   'LongDouble', 'Complex64', 'Complex128', 'CLongDouble')
        safe += list(dict.fromkeys(getattr(dtypes, n + 'DType') for n in numeric
                                   if hasattr(dtypes, n + 'DType')))  # some are aliases
    return safe


def allow_mmengine_checkpoints():
    """Let ``torch.load(weights_only=True)`` read mmengine's own training checkpoints.

    Runner checkpoints pickle ``message_hub`` (a ``HistoryBuffer`` holding numpy arrays and
    scalars), so ``--resume``, ``mim test`` and ``init_detector`` fail on them under torch >= 2.6.
    Instead of turning the safety off, add exactly the classes those files contain
    (:func:`mmengine_checkpoint_globals`) to torch's allow-list (its documented extension point,
    ``torch.serialization.add_safe_globals``); anything else is still refused, and no loader of
    mmengine is replaced. Idempotent. Applied by what loads runner checkpoints:
    :func:`read_checkpoint` and ``AtomicCheckpointHook`` (before the runner resumes or loads);
    call it before mmengine's ``load_checkpoint`` / mmdet's ``init_detector`` elsewhere.
    ``import dsnet_mm`` leaves the allow-list alone.
    """
    global _SAFE_GLOBALS_DONE
    if _SAFE_GLOBALS_DONE:
        return
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    _SAFE_GLOBALS_DONE = True
