"""Reading checkpoints safely and loading them with a coverage check.

mmengine's ``PretrainedInit`` loads with ``strict=False`` and only logs mismatches, so a wrong
prefix or variant silently trains from random weights. ``load_checkpoint_strict`` refuses: it
says how many tensors matched, shows some missing / unexpected / mis-shaped names and the likely
fix for a DS-Net backbone (``explain_mismatch``).
"""
import os
import os.path as osp
import pickle
import pickletools
import re
import zipfile
from collections import OrderedDict
from functools import partial
from typing import Callable, Optional

import torch

# ------------------------------------------------------------------ reading files


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


_CHECKPOINT_EXTS = ('.pth', '.pt', '.pth.tar', '.tar', '.pdparams', '.ckpt', '.bin')

# What to do about a missing file depends on what it was for; init weights by default.
PRETRAINED_ARG_HINT = (
    "This file is named by the config's model.pretrained (mmseg's EncoderDecoder passes it to "
    'the backbone), often a ResNet checkpoint left over from the base config: set '
    'model.pretrained=None and give the DS-Net weights in model.backbone.init_cfg, or put a '
    'DS-Net checkpoint in model.pretrained.')
BACKBONE_WEIGHTS_HINT = (
    'Check the path, produce it with tools/model_converters/dsnet_to_mmpretrain.py (from reference '
    'DS-Net or PaddleClas weights) or an mmpretrain ImageNet run, or train from scratch with '
    'init_cfg=None.')

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


def read_checkpoint(path, map_location='cpu', missing_hint: Optional[str] = None):
    """Load a checkpoint file, with a clear error for a missing file (``missing_hint`` says what
    to do; it defaults to advice about backbone weights), a truncated, corrupt or foreign file,
    and a file that holds objects safe loading refuses (named).

    The reader is chosen by the file's bytes, not its name (:func:`read_checkpoint_file`).
    ``path`` may be a ``str`` or ``os.PathLike``, with ``~`` expanded; or an ``http(s)://`` URL
    (downloaded once into torch's hub cache, checked by reading it back, then loaded); or another
    mmengine scheme such as ``open-mmlab://`` (left to mmengine's ``CheckpointLoader``); see
    ``dsnet_mm/utils/download.py``."""
    from .download import is_url, load_url, load_with_mmengine, mmengine_scheme
    path = os.fspath(path)
    if is_url(path):
        return load_url(path, map_location)
    if mmengine_scheme(path):
        return load_with_mmengine(path, map_location)
    path = osp.expanduser(path)
    if osp.isdir(path):
        inside = sorted(f for f in os.listdir(path) if f.endswith(_CHECKPOINT_EXTS))
        raise IsADirectoryError(
            f'{path!r} is a directory, not a checkpoint file: name the file'
            + (f' (it holds {_examples(inside)})' if inside else '') + '.'
            + (f' {missing_hint}' if missing_hint else ''))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'checkpoint not found: {path!r}. {missing_hint or BACKBONE_WEIGHTS_HINT}')
    return read_checkpoint_file(path, map_location)


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


def extract_state_dict(ckpt) -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a checkpoint: ``state_dict`` (mmengine), ``model`` / ``model_ema``
    (reference DeiT-style), or the dict itself (flat)."""
    if not isinstance(ckpt, dict):
        raise TypeError(f'a checkpoint must be a dict, got {type(ckpt).__name__}')
    for key in ('state_dict', 'model', 'model_ema'):
        if key in ckpt and isinstance(ckpt[key], dict):
            ckpt = ckpt[key]
            break
    sd = OrderedDict((k, v) for k, v in ckpt.items() if torch.is_tensor(v))
    if sd and all(k.startswith('module.') for k in sd):   # saved from DataParallel / DDP
        sd = OrderedDict((k[7:], v) for k, v in sd.items())
    return sd


def save_checkpoint_atomic(obj, path: str):
    """``torch.save`` to a temporary file beside ``path``, renamed over it when complete: an
    interrupted or failed save leaves neither a partial ``path`` nor the temporary file."""
    if osp.isdir(path):
        raise IsADirectoryError(f'{path!r} is a directory: give the path of the file to write')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp.{os.getpid()}'
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def check_conversion_paths(src: str, dst: str, force: bool = False):
    """What a converter checks before it reads anything: DST must name a file, and never SRC
    itself unless ``force`` (then the atomic save replaces SRC only once the result is whole)."""
    from .download import is_url
    stem = osp.splitext(osp.basename(str(src).rstrip('/')))[0] or 'converted'
    if osp.isdir(dst):
        raise IsADirectoryError(f'DST {dst!r} is a directory: give the path of the file to '
                                f'write, e.g. {osp.join(dst, stem + "_converted.pth")!r}')
    if not force and not is_url(src) and osp.isfile(src) and osp.exists(dst) and \
            osp.samefile(src, dst):
        raise FileExistsError(f'DST {dst!r} is SRC: writing it would replace the input '
                              'checkpoint. Give another DST, or --force to replace SRC (written '
                              'to a temporary file first, renamed over SRC when complete).')


# ------------------------------------------------------------------ strict loading


def _top_level(keys, n=4):
    seen = OrderedDict()
    for k in keys:
        seen.setdefault(k.split('.')[0] + '.', None)
    return list(seen)[:n]


def _examples(names, n=3):
    names = list(names)
    more = f' (+{len(names) - n} more)' if len(names) > n else ''
    return ', '.join(names[:n]) + more


def check_state_dict_fits(module: torch.nn.Module, state_dict, source: str = 'the checkpoint',
                          hint: Optional[Callable] = None):
    """Raise ``ValueError`` unless ``state_dict`` holds exactly ``module``'s tensors and shapes."""
    own = module.state_dict()
    matched = [k for k in own if k in state_dict and state_dict[k].shape == own[k].shape]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mis_shaped = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}'
                  for k in own if k in state_dict and state_dict[k].shape != own[k].shape]
    if not (missing or unexpected or mis_shaped):
        return len(matched)
    lines = [f'{source} does not fit {module.__class__.__name__}: {len(matched)}/{len(own)} '
             'tensors match.']
    if missing:
        lines.append(f'  {len(missing)} missing: {_examples(missing)}')
    if unexpected:
        lines.append(f'  {len(unexpected)} unexpected: {_examples(unexpected)}')
    if mis_shaped:
        lines.append(f'  {len(mis_shaped)} with other shapes (checkpoint vs model): {_examples(mis_shaped, 2)}')
    fix = hint(state_dict, missing, unexpected, mis_shaped) if hint else None
    lines.append('  Likely fix: ' + (fix or 'use a checkpoint of this exact model and configuration.'))
    raise ValueError('\n'.join(lines))


def explain_mismatch(module: torch.nn.Module, state_dict, missing, unexpected, mis_shaped,
                     from_pretrained_arg: bool = False) -> Optional[str]:
    """The likely cause of a checkpoint that does not fit a ``DSNet`` ``module`` (the "Likely
    fix" of ``check_state_dict_fits``), from the keys of the (converted) ``state_dict``."""
    from ..models.backbones.dsnet_checkpoint import DS_BLOCK_KEY_RE, arch_mismatch
    pretrained_arg = PRETRAINED_ARG_HINT if from_pretrained_arg else ''
    heads = {k.split('.')[0] for k in state_dict}
    if heads & {'neck', 'rpn_head', 'roi_head', 'bbox_head', 'decode_head', 'head', 'backbone'}:
        return ("the keys are a whole model's (neck/head/backbone); select the backbone with "
                "init_cfg prefix='backbone.'")
    if not any(DS_BLOCK_KEY_RE.match(k) for k in state_dict):
        return (f'this is not a DS-Net checkpoint: its keys look like another backbone\'s '
                f'({_examples(state_dict)}). Use DS-Net weights (converted with '
                f'tools/model_converters/dsnet_to_mmpretrain.py). {pretrained_arg}').strip()
    wrong_arch = arch_mismatch(state_dict, module)
    if wrong_arch:
        return wrong_arch
    if mis_shaped:
        return 'the channel widths differ: the checkpoint comes from another arch dict'
    return None


def load_checkpoint_strict(module: torch.nn.Module, filename: str, prefix: Optional[str] = None,
                           map_location='cpu', logger=None,
                           from_pretrained_arg: bool = False) -> int:
    """Load ``filename`` into the ``DSNet`` ``module``, all tensors or an error.

    The module's ``load_state_dict`` renames reference / PaddleClas keys (``DSNet`` converts
    whatever is loaded into it); when the weights do not fit, the error counts and names the
    mismatches and gives the likely fix (:func:`explain_mismatch`).

    Args:
        prefix: keep only the keys under it and strip it (``'backbone.'`` for a classifier or a
            detector checkpoint); None takes the whole dict; ``'auto'`` is ``'backbone.'`` when
            the file has such keys, else None.
        from_pretrained_arg: the file was named by mmseg's ``model.pretrained``: the errors
            say so, since that is often a leftover of a base config.
    Returns:
        the number of tensors loaded.
    """
    missing_hint = PRETRAINED_ARG_HINT if from_pretrained_arg else None
    sd = extract_state_dict(read_checkpoint(filename, map_location, missing_hint))
    if prefix == 'auto':
        prefix = 'backbone.' if any(k.startswith('backbone.') for k in sd) else None
    name = f'checkpoint {filename!r}' + (f' (prefix {prefix!r})' if prefix else '')
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        sub = OrderedDict((k[len(prefix):], v) for k, v in sd.items() if k.startswith(prefix))
        if not sub:
            raise ValueError(
                f'no tensor in {filename!r} starts with prefix {prefix!r}; its keys start with '
                f'{_top_level(sd)}. Likely fix: set init_cfg prefix to one of those (e.g. '
                "prefix='backbone.' for an mmpretrain/mmdet checkpoint), prefix=None for a bare "
                'backbone or reference DS-Net file, or convert it with '
                'tools/model_converters/dsnet_to_mmpretrain.py.')
        sd = sub
    try:
        module.load_state_dict(sd, strict=True)
    except (RuntimeError, ValueError):   # ValueError: DSNet refused a DS-Net of another arch
        # Say what does not fit, in the names the module converted to (a failed load, so
        # the conversion runs again here only to explain it).
        from ..models.backbones.dsnet_checkpoint import checkpoint_filter_fn
        check_state_dict_fits(module, checkpoint_filter_fn(sd, module), name,
                              partial(explain_mismatch, module,
                                      from_pretrained_arg=from_pretrained_arg))
        raise
    if logger is None:
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
    n = len(module.state_dict())
    logger.info(f'{module.__class__.__name__}: loaded all {n} tensors from {name}')
    return n


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
