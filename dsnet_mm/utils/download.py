"""Checkpoints named by URL, as OpenMMLab configs name them.

``http://`` / ``https://``: downloaded once into torch's hub checkpoint cache
(``$TORCH_HOME/hub/checkpoints``, where mmengine and torchvision keep theirs). A download enters
the cache only when it is whole and is a checkpoint:

* it is streamed into ``<name>.<pid>@<host>.download.<hex>.partial`` beside its final name, with a
  read timeout, and checked against the GET's own ``Content-Length``
  (``torch.hub.download_url_to_file`` stops without an error when the connection closes early,
  takes no timeout, and does not say what the GET announced; a HEAD request is no substitute:
  servers refuse it or answer ``Content-Length: 0``);
* it is read back with the safe reader of local files
  (:func:`dsnet_mm.utils.safe_load.read_checkpoint_file`), so a proxy's error page served with
  status 200 is refused;
* only then is it renamed into place, and ``<hub dir>/checkpoint_urls/<name>.url`` records
  the URL it came from.

A file of that name that torch or mmengine downloaded is reused. A second URL with the same file
name gets its own entry, ``<stem>.url-<8 hex digits of the URL's sha256><ext>``, instead of the
first URL's weights. A cached file that no longer reads is set aside as ``<name>.unreadable`` and
downloaded again. A download killed by a signal (SIGKILL included) leaves its ``.partial`` file;
the next download into the cache removes those whose process is gone.

Other schemes mmengine's ``CheckpointLoader`` knows (``open-mmlab://``, ``torchvision://``,
``mmcls://``, ``pavi://``...) are left to mmengine, as for mmdet's own backbones.
"""
import hashlib
import http.client
import os
import os.path as osp
import re
import socket
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlparse

import torch

from .safe_load import UnsafeCheckpointError, read_checkpoint_file

URL_PREFIXES = ('http://', 'https://')
_CHUNK = 1 << 20
# <name>.<pid>[@<host>].download.<hex>.partial (without @<host>: written by earlier versions)
_PARTIAL_RE = re.compile(r'\.(\d+)(?:@([^/]*))?\.download\.[0-9a-f]+\.partial$')
_FOREIGN_PARTIAL_AGE_S = 24 * 3600   # another host's process cannot be asked whether it lives


class CheckpointDownloadError(RuntimeError):
    """A checkpoint URL could not be downloaded; nothing was written to the cache."""


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def mmengine_scheme(path) -> bool:
    """Whether ``path`` starts with a scheme (other than http(s)) that mmengine's
    ``CheckpointLoader`` has a loader for."""
    if not isinstance(path, str) or '://' not in path or is_url(path):
        return False
    from mmengine.runner.checkpoint import CheckpointLoader
    return any(p and path.startswith(p) for p in CheckpointLoader._schemes)


def _url_record(path: str) -> str:
    """Where the URL of cached file ``path`` is recorded: ``<hub dir>/checkpoint_urls/<name>.url``,
    beside the cache folder so that the folder holds checkpoints only."""
    return osp.join(osp.dirname(osp.dirname(path)), 'checkpoint_urls',
                    osp.basename(path) + '.url')


def _recorded_url(path: str):
    try:
        with open(_url_record(path)) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _record_url(path: str, url: str):
    record = _url_record(path)
    os.makedirs(osp.dirname(record), exist_ok=True)
    with open(record, 'w') as f:
        f.write(url + '\n')


def cached_path(url: str) -> str:
    """Where ``url`` is (or will be) cached: ``torch.hub.get_dir()/checkpoints/<file name>``,
    the name torch and mmengine use, so a file either of them downloaded is reused; unless
    ``checkpoint_urls/<file name>.url`` records another URL: then
    ``<stem>.url-<hash of the URL><ext>``."""
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'checkpoint URL {url!r} names no file')
    plain = osp.join(torch.hub.get_dir(), 'checkpoints', name)
    owner = _recorded_url(plain)
    if owner is None or owner == url:
        return plain
    stem, ext = osp.splitext(name)
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return osp.join(osp.dirname(plain), f'{stem}.url-{digest}{ext}')


def _manual_way(url: str, dst: str) -> str:
    return (f'To do it by hand: download {url} on a machine with access (e.g. `curl -fLO {url}`), '
            f'then either copy it to {dst}, or convert it with `python '
            'tools/model_converters/dsnet_to_mmpretrain.py FILE checkpoints/dsnet_in1k.pth` and '
            "set checkpoint='checkpoints/dsnet_in1k.pth' (e.g. --cfg-options "
            'model.backbone.init_cfg.checkpoint=checkpoints/dsnet_in1k.pth).')


def _log(msg, level='INFO'):
    import logging

    from mmengine.logging import print_log
    print_log(msg, logger='current', level=getattr(logging, level))


# ------------------------------------------------------------------ the cache folder


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # another user's process
        return False
    try:   # a killed process its parent has not reaped yet is a zombie: gone too
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except (OSError, IndexError):
        return False


def _remove_stale_partials(cache_dir: str):
    """Remove the temporary files of downloads whose process died (a kill runs no cleanup)."""
    try:
        names = os.listdir(cache_dir)
    except OSError:
        return
    host = socket.gethostname()
    for name in names:
        m = _PARTIAL_RE.search(name)
        if not m:
            continue
        path = osp.join(cache_dir, name)
        try:
            if m.group(2) in (None, host):
                stale = _process_gone(int(m.group(1)))
            else:
                stale = time.time() - osp.getmtime(path) > _FOREIGN_PARTIAL_AGE_S
            if stale:
                os.remove(path)
                _log(f'Removed {path}, left by a download that was killed')
        except OSError:   # removed meanwhile, or a read-only cache
            pass


def _writable_cache(cache_dir: str, url: str):
    """Create the cache folder, or say which folder cannot be written, why, and what to do."""
    why = None
    try:
        os.makedirs(cache_dir, exist_ok=True)
        if not os.access(cache_dir, os.W_OK | os.X_OK):
            why = 'it is not writable (permissions or a read-only file system)'
    except OSError as e:
        why = f'{type(e).__name__}: {e.strerror or e}'
        if isinstance(e, (NotADirectoryError, FileExistsError)):
            why += ' (a file is in the way of the folder)'
    if why is None:
        return
    home = os.environ.get('TORCH_HOME')
    raise CheckpointDownloadError(
        f'cannot download checkpoint {url}: torch\'s checkpoint cache {cache_dir} cannot be '
        f'written: {why}. It is $TORCH_HOME/hub/checkpoints (TORCH_HOME='
        f'{home or "unset, default ~/.cache/torch"}). Fix: set TORCH_HOME to a writable '
        'directory (e.g. `export TORCH_HOME=$HOME/.cache/torch`), or give the checkpoint as a '
        f'local path. {_manual_way(url, "a path of yours")}')


def _set_aside(path: str, url: str, error: Exception) -> str:
    """Rename unreadable cached file ``path`` to ``<path>.unreadable`` (kept for inspection,
    never reused) so that the next read downloads it again."""
    aside, n = path + '.unreadable', 1
    while osp.exists(aside):
        aside, n = f'{path}.unreadable.{n}', n + 1
    try:
        os.replace(path, aside)
    except OSError as e:
        raise RuntimeError(
            f'{path}, the cached download of {url}, cannot be read: {error} It could not be '
            f'moved aside ({type(e).__name__}: {e.strerror or e}): delete {path} and run again '
            'to download it again.') from error
    _log(f'{path}, the cached download of {url}, cannot be read: {error} It is kept as '
         f'{aside}; downloading {url} again.', 'WARNING')
    return aside


# ------------------------------------------------------------------ downloading


def _fetch(url: str, dst: str, progress: bool, timeout: float):
    """GET ``url`` into a temporary file beside ``dst``, as long as the GET said; -> (its path,
    the Content-Type)."""
    from torch.hub import tqdm   # tqdm, or torch's stand-in without it
    tmp = f'{dst}.{os.getpid()}@{socket.gethostname()}.download.{uuid.uuid4().hex}.partial'
    req = urllib.request.Request(url, headers={'User-Agent': 'torch.hub'})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:   # HTTP errors raise here
            length = r.headers.get('Content-Length', '')
            expected = int(length) if length.strip().isdigit() else None
            with open(tmp, 'wb') as f, tqdm(total=expected, disable=not progress, unit='B',
                                            unit_scale=True, unit_divisor=1024) as bar:
                while True:
                    chunk = r.read1(_CHUNK)   # what has arrived: progress follows the stream
                    if not chunk:
                        break
                    f.write(chunk)
                    bar.update(len(chunk))
                got = f.tell()
            content_type = r.headers.get('Content-Type')
        # http.client returns a short body without an error when the connection closes early
        if expected is not None and got != expected:
            raise CheckpointDownloadError(
                f'the connection closed early: got {got} of {expected} bytes')
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return tmp, content_type


def _download(url: str, dst: str, progress, timeout, map_location):
    """Download ``url`` to ``dst`` through a checked temporary file; -> the checkpoint read."""
    if progress is None:
        progress = int(os.environ.get('LOCAL_RANK', 0)) == 0
    _writable_cache(osp.dirname(dst), url)
    _log(f'Downloading {url} to {dst}')
    tmp = None
    try:
        tmp, content_type = _fetch(url, dst, progress, timeout)
        try:
            ckpt = read_checkpoint_file(tmp, map_location)
        except RuntimeError as e:
            with open(tmp, 'rb') as f:
                head = f.read(60)
            cause = e.__cause__
            why = (str(e).split(': ', 1)[1] if isinstance(e, UnsafeCheckpointError) else
                   f'the reader stopped at {type(cause).__name__}: {str(cause).rstrip(".")}')
            raise CheckpointDownloadError(
                f'the server\'s answer is not a checkpoint ({osp.getsize(tmp)} bytes, '
                f'Content-Type {content_type}, beginning {head!r}; an error or login page of '
                f'a proxy?): {why}. Check the URL') from e
        _record_url(dst, url)   # which URL owns this name (see cached_path)
        os.replace(tmp, dst)
        tmp = None
    except (OSError, http.client.HTTPException, CheckpointDownloadError, ValueError) as e:
        why = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(
            e, urllib.error.HTTPError) else e
        why = why if isinstance(why, CheckpointDownloadError) else f'{type(why).__name__}: {why}'
        raise CheckpointDownloadError(
            f'cannot download checkpoint {url} to {dst}: {why}. Nothing '
            'was written to the cache; the next run tries again. ' + _manual_way(url, dst)) from e
    finally:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)
    return ckpt


def _cached_or_downloaded(url, map_location, progress, timeout, set_aside=True):
    """-> (cache path, checkpoint): the cached file if it reads, else downloaded now."""
    dst = cached_path(url)
    _remove_stale_partials(osp.dirname(dst))
    if osp.isfile(dst):
        try:
            ckpt = read_checkpoint_file(dst, map_location)
        except UnsafeCheckpointError:   # whole, and refused: downloading again cannot help
            raise
        except RuntimeError as e:
            if not set_aside:
                raise RuntimeError(f'{dst}, the cached download of {url}, cannot be read: {e} '
                                   f'Delete {dst} and run again.') from e
            _set_aside(dst, url, e)
        else:
            if _recorded_url(dst) is None:   # downloaded by torch / mmengine: claim the name
                try:
                    _record_url(dst, url)
                except OSError:   # a read-only cache still serves its files
                    pass
            return dst, ckpt
    return dst, _download(url, dst, progress, timeout, map_location)


def _rank0_first(url, map_location, progress, timeout):
    """In a distributed run rank 0 downloads first and the others wait (as mmengine's
    ``load_from_http``), so N ranks do not fetch the same file N times; only rank 0 moves a
    cached file aside."""
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    if world_size > 1 and rank > 0:
        barrier()
    try:
        return _cached_or_downloaded(url, map_location, progress, timeout, set_aside=rank == 0)
    finally:
        if world_size > 1 and rank == 0:
            barrier()


def load_url(url: str, map_location='cpu', progress: bool = None, timeout: float = 60.):
    """The checkpoint at ``url``, read from torch's hub cache, downloaded first when it is not
    there or its cached file no longer reads (set aside as ``<file>.unreadable``).

    Raises:
        CheckpointDownloadError: no network, DNS failure, HTTP error, a body cut short, an answer
            that is not a checkpoint, an unwritable cache. The message names the URL, the cache
            path and how to do it by hand; no partial file is left in the cache, so the next try
            downloads again.
    """
    return _rank0_first(url, map_location, progress, timeout)[1]


def download_checkpoint(url: str, progress: bool = None, timeout: float = 60.) -> str:
    """The local file for checkpoint ``url``: the cached one, or downloaded now (as
    :func:`load_url`, which also reads it back)."""
    return _rank0_first(url, 'cpu', progress, timeout)[0]


def load_with_mmengine(path: str, map_location='cpu'):
    """``open-mmlab://``, ``torchvision://`` and the other mmengine schemes: mmengine's own
    loaders (their URL tables, hub cache and ``torch.load``), as for mmdet's backbones."""
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(path, map_location=map_location)
