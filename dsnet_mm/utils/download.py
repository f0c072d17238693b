"""Checkpoints named by URL, as OpenMMLab configs name them.

``http://`` / ``https://``: downloaded once into torch's hub checkpoint cache
(``$TORCH_HOME/hub/checkpoints``, where mmengine and torchvision keep theirs) with
``torch.hub.download_url_to_file`` (progress bar, temporary file in the cache folder), checked
against the size the server announced, and renamed into place only when complete. The caller then
reads the cached file like any local one (same safe readers, conversion and fit check).

Other schemes mmengine's ``CheckpointLoader`` knows (``open-mmlab://``, ``torchvision://``,
``mmcls://``, ``pavi://``...) are left to mmengine, as for mmdet's own backbones.
"""
import http.client
import os
import os.path as osp
import socket
import urllib.error
import urllib.request
from urllib.parse import urlparse

import torch

URL_PREFIXES = ('http://', 'https://')


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


def cached_path(url: str) -> str:
    """Where ``url`` is (or will be) cached: ``torch.hub.get_dir()/checkpoints/<file name>``,
    the name torch and mmengine use, so a file either of them downloaded is reused."""
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'checkpoint URL {url!r} names no file')
    return osp.join(torch.hub.get_dir(), 'checkpoints', name)


def _manual_way(url: str, dst: str) -> str:
    return (f'To do it by hand: download {url} on a machine with access (e.g. `curl -fLO {url}`), '
            f'then either copy it to {dst}, or convert it with `python '
            'tools/model_converters/dsnet_to_mmpretrain.py FILE checkpoints/dsnet_in1k.pth` and '
            "set checkpoint='checkpoints/dsnet_in1k.pth' (e.g. --cfg-options "
            'model.backbone.init_cfg.checkpoint=checkpoints/dsnet_in1k.pth).')


def _expected_size(url: str, timeout: float):
    """Content-Length of ``url`` from a HEAD request, or None when the server does not say.

    ``download_url_to_file`` reads in chunks and stops at the first empty read, so a server that
    closes the connection mid-file yields a short file and no error; this is what it is checked
    against. A 404 or an unreachable host raises here, before anything is written.
    """
    req = urllib.request.Request(url, method='HEAD', headers={'User-Agent': 'torch.hub'})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            size = r.headers.get('Content-Length')
    except urllib.error.HTTPError as e:
        if e.code in (403, 405, 501):   # HEAD not allowed: let the GET decide
            return None
        raise
    return int(size) if size and size.isdigit() else None


def download_checkpoint(url: str, progress: bool = None, timeout: float = 60.) -> str:
    """The local file for checkpoint ``url``: the cached one, or downloaded now.

    In a distributed run rank 0 downloads first and the others wait (as mmengine's
    ``load_from_http``), so N ranks do not fetch the same file N times.

    Raises:
        CheckpointDownloadError: no network, DNS failure, HTTP error, a body cut short. The
            message names the URL, the cache path and how to do it by hand; no partial file is
            left in the cache, so the next try downloads again.
    """
    from mmengine.dist import barrier, get_dist_info
    rank, world_size = get_dist_info()
    if world_size > 1 and rank > 0:
        barrier()
    try:
        path = _download_once(url, progress, timeout)
    finally:
        if world_size > 1 and rank == 0:
            barrier()
    return path


def _download_once(url, progress, timeout):
    dst = cached_path(url)
    if osp.isfile(dst):
        return dst
    if progress is None:
        progress = int(os.environ.get('LOCAL_RANK', 0)) == 0
    os.makedirs(osp.dirname(dst), exist_ok=True)
    # torch.hub writes <tmp>.<uuid>.partial and renames it to <tmp> when the stream ends; <tmp>
    # becomes <dst> only after the size check, so <dst> is never a partial file.
    tmp = f'{dst}.{os.getpid()}.download'
    from mmengine.logging import print_log
    print_log(f'Downloading {url} to {dst}', logger='current')
    try:
        expected = _expected_size(url, timeout)
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)   # download_url_to_file takes no timeout
        try:
            torch.hub.download_url_to_file(url, tmp, progress=progress)
        finally:
            socket.setdefaulttimeout(old_timeout)
        got = osp.getsize(tmp)
        if expected is not None and got != expected:
            raise CheckpointDownloadError(
                f'the connection closed early: got {got} of {expected} bytes')
        os.replace(tmp, dst)
    except (OSError, http.client.HTTPException, CheckpointDownloadError, ValueError) as e:
        why = e.reason if isinstance(e, urllib.error.URLError) and not isinstance(
            e, urllib.error.HTTPError) else e
        raise CheckpointDownloadError(
            f'cannot download checkpoint {url} to {dst}: {type(why).__name__}: {why}. Nothing '
            'was written to the cache; the next run tries again. ' + _manual_way(url, dst)) from e
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return dst


def load_with_mmengine(path: str, map_location='cpu'):
    """``open-mmlab://``, ``torchvision://`` and the other mmengine schemes: mmengine's own
    loaders (their URL tables, hub cache and ``torch.load``), as for mmdet's backbones."""
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(path, map_location=map_location)
