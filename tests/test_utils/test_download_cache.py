"""The hub cache keeps only checkpoints: a loopback HTTP server (127.0.0.1, ephemeral port, daemon
threads, stopped after each test and by a watchdog) misbehaves as bad networks and proxies do;
``TORCH_HOME`` is a temporary directory. A body cut short (HEAD refused), an error page served
with status 200, a HEAD announcing 0 bytes, a download killed by SIGTERM, an empty cached file,
two URLs with one file name and an unwritable ``TORCH_HOME``."""
import hashlib
import http.server
import logging
import os
import os.path as osp
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from dsnet_mm.utils import read_checkpoint
from dsnet_mm.utils.download import CheckpointDownloadError, cached_path
from helpers import LoopbackServer, subprocess_env

SERVER_LIFETIME_S = 120   # the watchdog stops a server a test forgot
NAME = 'DSNet_tiny_pretrained.pdparams'


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers from ``server.routes``: path -> dict(body=bytes, head=None | 405 | 0,
    cut=bool, stall=bool, type=str)."""
    timeout = 30

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _answer(self, head):
        self.server.requests.append((self.command, self.path))
        route = self.server.routes.get(self.path)
        if route is None or (head and route.get('head') == 405):
            self.send_error(404 if route is None else 405)
            return
        body = route['body']
        self.send_response(200)
        self.send_header('Content-Type', route.get('type', 'application/octet-stream'))
        self.send_header('Content-Length',
                         '0' if head and route.get('head') == 0 else str(len(body)))
        self.end_headers()
        if head:
            return
        if route.get('cut') or route.get('stall'):
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            if route.get('stall'):   # hold the connection open until the test is done
                self.server.release.wait(SERVER_LIFETIME_S)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(LoopbackServer):

    def __init__(self):
        super().__init__(_Handler, SERVER_LIFETIME_S, routes={})

    def route(self, path, body, **how):
        self.httpd.routes[path] = dict(body=body, **how)
        return self.url(path)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The hub checkpoint folder under a temporary TORCH_HOME."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def listing(cache):
    return sorted(os.listdir(cache)) if cache.exists() else []


def weights(seed):
    """A PaddleClas file (plain pickle of numpy arrays, as ``paddle.save`` writes) -> bytes."""
    g = np.random.default_rng(seed)
    return pickle.dumps({'w': g.standard_normal((64, 64)).astype('float32'),
                         'b': g.standard_normal(64).astype('float32')}, protocol=2)


def assert_is(ckpt, seed):
    ref = pickle.loads(weights(seed))
    assert sorted(ckpt) == sorted(ref)
    for k in ref:
        assert torch.equal(ckpt[k], torch.from_numpy(ref[k])), k


def test_body_cut_short_with_head_refused_is_not_cached(server, cache):
    body = weights(0)
    url = server.route(f'/cut/{NAME}', body, head=405, cut=True)
    with pytest.raises(CheckpointDownloadError) as e:
        read_checkpoint(url)
    msg = str(e.value)
    print(msg)
    assert f'got {len(body) // 2} of {len(body)} bytes' in msg and url in msg, msg
    assert listing(cache) == []
    server.httpd.routes[f'/cut/{NAME}']['cut'] = False   # the network is back
    assert_is(read_checkpoint(url), 0)
    assert listing(cache) == [NAME]
    assert server.gets == [f'/cut/{NAME}'] * 2


def test_error_page_served_with_200_is_not_cached(server, cache):
    page = b'<!DOCTYPE html><html><body>Proxy error: access denied</body></html>'
    wrong = server.route(f'/wrong/{NAME}', page, type='text/html')
    with pytest.raises(CheckpointDownloadError) as e:
        read_checkpoint(wrong)
    msg = str(e.value)
    print(msg)
    assert wrong in msg and "not a checkpoint" in msg and 'text/html' in msg, msg
    assert "b'<!DOCTYPE html>" in msg and 'Check the URL' in msg, msg
    assert listing(cache) == []
    right = server.route(f'/right/{NAME}', weights(0))   # the user corrects the URL
    assert_is(read_checkpoint(right), 0)


def test_head_announcing_zero_bytes_does_not_break_a_good_get(server, cache):
    url = server.route(f'/{NAME}', weights(0), head=0)
    assert_is(read_checkpoint(url), 0)
    assert listing(cache) == [NAME]


def test_a_download_killed_by_sigterm_leaves_nothing_after_the_next_download(server, cache):
    stalled = server.route(f'/stall/{NAME}', weights(0), stall=True)
    code = ('import sys\nfrom dsnet_mm.utils.download import download_checkpoint\n'
            'download_checkpoint(sys.argv[1], progress=False)')
    child = subprocess.Popen([sys.executable, '-c', code, stalled], env=subprocess_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not [n for n in listing(cache) if n.endswith('.partial')
                   and osp.getsize(cache / n) > 0]:
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            assert time.time() < deadline, 'the download did not start'
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)   # mid-file: the server holds the rest back
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGTERM
    left = [n for n in listing(cache) if n.endswith('.partial')]
    assert len(left) == 1 and str(child.pid) in left[0], left   # what the kill leaves
    # a download of this process in progress is left alone
    alive = cache / f'other.pth.{os.getpid()}.download.{"0" * 32}.partial'
    alive.write_bytes(b'in progress')

    url = server.route(f'/{NAME}', weights(0))
    assert_is(read_checkpoint(url), 0)
    assert listing(cache) == sorted([NAME, alive.name])


@pytest.fixture
def log_lines():
    """What dsnet_mm logs (through mmengine's current logger) during the test."""
    from mmengine.logging import MMLogger
    lines, handler = [], logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def test_empty_cached_file_is_set_aside_and_downloaded_again(server, cache, log_lines):
    url = server.route(f'/{NAME}', weights(0))
    cache.mkdir(parents=True)
    (cache / NAME).write_bytes(b'')   # e.g. a copy into the cache that failed
    assert_is(read_checkpoint(url), 0)
    log = '\n'.join(log_lines)
    print(log)
    assert f'{cache / NAME}, the cached download of {url}, cannot be read' in log, log
    assert f'It is kept as {cache / NAME}.unreadable; downloading {url} again' in log, log
    assert listing(cache) == [NAME, NAME + '.unreadable']
    assert (cache / (NAME + '.unreadable')).read_bytes() == b''
    server.stop()
    assert_is(read_checkpoint(url), 0)   # from the cache now


def test_two_urls_with_one_file_name_get_their_own_weights(server, cache):
    a = server.route(f'/a/{NAME}', weights(1))
    b = server.route(f'/b/{NAME}', weights(2))
    assert_is(read_checkpoint(a), 1)
    assert_is(read_checkpoint(b), 2)
    h = hashlib.sha256(b.encode()).hexdigest()[:8]
    assert cached_path(a) == str(cache / NAME)                     # the first keeps the name
    assert cached_path(b) == str(cache / f'DSNet_tiny_pretrained.url-{h}.pdparams')
    assert listing(cache) == sorted([NAME, f'DSNet_tiny_pretrained.url-{h}.pdparams'])
    server.stop()
    assert_is(read_checkpoint(a), 1)
    assert_is(read_checkpoint(b), 2)


def test_file_downloaded_by_torch_is_reused(server, cache):
    url = server.route(f'/{NAME}', weights(0))
    cache.mkdir(parents=True)
    torch.hub.download_url_to_file(url, str(cache / NAME), progress=False)
    server.stop()
    assert_is(read_checkpoint(url), 0)


def test_torch_home_under_a_file(server, tmp_path, monkeypatch):
    url = server.route(f'/{NAME}', weights(0))
    (tmp_path / 'afile').write_text('')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'afile' / 'torch'))
    with pytest.raises(CheckpointDownloadError) as e:
        read_checkpoint(url)
    msg = str(e.value)
    print(msg)
    assert f"checkpoint cache {tmp_path}/afile/torch/hub/checkpoints cannot be written" in msg
    assert 'NotADirectoryError' in msg and 'set TORCH_HOME to a writable directory' in msg, msg
    assert url in msg and 'give the checkpoint as a local path' in msg, msg


def test_read_only_torch_home(server, tmp_path, monkeypatch):
    url = server.route(f'/{NAME}', weights(0))
    home = tmp_path / 'ro'
    (home / 'hub' / 'checkpoints').mkdir(parents=True)
    (home / 'hub' / 'checkpoints').chmod(0o555)
    monkeypatch.setenv('TORCH_HOME', str(home))
    if os.geteuid() == 0:   # root writes into 0o555 folders: the kernel's answer for a read-only
        real_access = os.access   # file system, as it would come for the cache folder
        ro = str(home / 'hub' / 'checkpoints')
        monkeypatch.setattr(os, 'access', lambda p, mode, *a, **k: False if (
            str(p).rstrip('/') == ro and mode & os.W_OK) else real_access(p, mode, *a, **k))
    try:
        with pytest.raises(CheckpointDownloadError,
                           match='cannot be written: it is not writable.*set TORCH_HOME'):
            read_checkpoint(url)
    finally:
        (home / 'hub' / 'checkpoints').chmod(0o755)
