"""Checkpoints by URL: a real HTTP server on 127.0.0.1 (ephemeral port, daemon thread, shut down
after each test and by a watchdog) serves files written here; ``TORCH_HOME`` is a temporary
directory. The first load downloads and equals the local-file load exactly, the second works with
the server gone; 404, a refused connection, a failed name look-up and a body cut short give an
error that names the URL, the cache path and the manual way, and leave the cache clean."""
import http.server
import json
import os
import os.path as osp
import socket
import time

import pytest
import torch

from dsnet_mm.models import DSNet
from dsnet_mm.utils.download import CheckpointDownloadError, cached_path
from helpers import LoopbackServer, run_converter, tool_module, write_source

SERVER_LIFETIME_S = 300   # the watchdog stops a server a test forgot


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the test's folder. While ``server.cut_short`` is set, ``/flaky/NAME`` announces
    NAME's full size, sends half and closes (a connection dropped mid-file); otherwise it serves
    NAME whole."""
    timeout = 30

    def translate_path(self, path):
        return super().translate_path(path[len('/flaky'):] if path.startswith('/flaky/') else path)

    def do_GET(self):
        self.server.requests.append(('GET', self.path))
        if self.path.startswith('/flaky/') and self.server.cut_short:
            data = open(self.translate_path(self.path), 'rb').read()
            self.send_response(200)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def do_HEAD(self):
        self.server.requests.append(('HEAD', self.path))
        if self.path.startswith('/flaky/') and self.server.cut_short:
            size = osp.getsize(self.translate_path(self.path))
            self.send_response(200)
            self.send_header('Content-Length', str(size))
            self.end_headers()
            return
        super().do_HEAD()

    def log_message(self, *args):
        pass


class Server(LoopbackServer):
    """Serves folder ``root``; ``cut_short`` as described in ``_Handler``."""

    def __init__(self, root):
        handler = lambda *a, **k: _Handler(*a, directory=str(root), **k)  # noqa: E731
        super().__init__(handler, SERVER_LIFETIME_S, cut_short=True)
        self.root = root


@pytest.fixture
def server(tmp_path):
    root = tmp_path / 'served'
    root.mkdir()
    s = Server(root)
    yield s
    s.stop()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / 'torch_home'
    monkeypatch.setenv('TORCH_HOME', str(home))
    return home


def cache_files(torch_home):
    d = torch_home / 'hub' / 'checkpoints'
    return sorted(os.listdir(d)) if d.exists() else []


def convert(src):
    """The converter's own conversion (tools/model_converters/dsnet_to_mmpretrain.py)."""
    return tool_module('model_converters/dsnet_to_mmpretrain.py').convert(src)


def write_mmpretrain(reference, path, tmp_path):
    """An mmpretrain classifier checkpoint, made by the converter's own code."""
    state_dict, meta = convert(str(write_source(reference, 'deit', tmp_path / 'ref_src.pth')))
    torch.save({'state_dict': state_dict, 'meta': meta}, path)
    return path


LAYOUTS = {   # served file name, how it is written, init_cfg prefix
    'paddle': ('DSNet_tiny_pretrained.pdparams', None),
    'deit': ('dsnet_tiny_reference.pth', None),
    'mmpretrain': ('dsnet_t_in1k.pth', 'backbone.'),
}


def serve(layout, reference, server, tmp_path):
    name, prefix = LAYOUTS[layout]
    path = server.root / name
    if layout == 'mmpretrain':
        write_mmpretrain(reference, path, tmp_path)
    else:
        write_source(reference, layout, path)
    return name, prefix


def load(checkpoint, prefix):
    model = DSNet('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint),
                                        prefix=prefix))
    model.init_weights()
    return model.state_dict()


def assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_url_downloads_once_and_equals_the_local_file(layout, reference, server, torch_home,
                                                      tmp_path):
    name, prefix = serve(layout, reference, server, tmp_path)
    url = server.url(name)
    from_url = load(url, prefix)
    assert_same(from_url, load(server.root / name, prefix))
    cached = torch_home / 'hub' / 'checkpoints' / name
    assert cached_path(url) == str(cached)
    assert cache_files(torch_home) == [name]                      # no temporary file left
    assert cached.read_bytes() == (server.root / name).read_bytes()
    assert server.gets == [f'/{name}']

    server.stop()                                                 # second load: from the cache
    assert_same(load(url, prefix), from_url)


def test_list_init_cfg_with_a_url_and_a_layer_initialiser(reference, server, torch_home, tmp_path):
    name, prefix = serve('paddle', reference, server, tmp_path)
    model = DSNet('tiny', init_cfg=[dict(type='Constant', layer='LayerNorm', val=3.),
                                    dict(type='Pretrained', checkpoint=server.url(name))])
    model.init_weights()   # mmengine's order: initialisers first, Pretrained last
    assert_same(model.state_dict(), load(server.root / name, None))


def test_list_init_cfg_as_mmengine_defines_it(reference, tmp_path):
    """A list of init cfgs: layer initialisers (no Pretrained) or a one-element Pretrained list."""
    model = DSNet('tiny', init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                                    dict(type='Constant', layer='LayerNorm', val=2.)])
    model.init_weights()
    qkv = model.stages[2][0].mixer.intra.global_qkv
    assert 0.015 < qkv.weight.std().item() < 0.025 and torch.all(qkv.bias == 0)
    assert torch.all(model.stages[0][0].mixer.intra.global_norm.weight == 2.)
    src = write_source(reference, 'paddle', tmp_path / 'DSNet_tiny_pretrained.pdparams')
    assert_same(_init_list(src), load(src, None))
    with pytest.raises(ValueError, match='2 Pretrained entries'):
        DSNet('tiny', init_cfg=[dict(type='Pretrained', checkpoint=str(src))] * 2).init_weights()


def _init_list(src):
    model = DSNet('tiny', init_cfg=[dict(type='Pretrained', checkpoint=str(src))])
    model.init_weights()
    return model.state_dict()


def test_mmseg_pretrained_takes_a_url(reference, server, torch_home, tmp_path):
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    name, _ = serve('mmpretrain', reference, server, tmp_path)
    init_default_scope('mmseg')
    seg = MODELS.build(ConfigDict(
        type='EncoderDecoder', pretrained=server.url(name),
        backbone=dict(type='DSNet', arch='tiny'),
        decode_head=dict(type='FCNHead', in_channels=512, in_index=3, channels=32, num_convs=1,
                         num_classes=4, norm_cfg=dict(type='BN'))))
    seg.init_weights()
    assert_same(seg.backbone.state_dict(), load(server.root / name, 'backbone.'))


def test_converter_src_takes_a_url(reference, server, torch_home, tmp_path):
    name, _ = serve('paddle', reference, server, tmp_path)
    dst = tmp_path / 'out.pth'   # the child inherits TORCH_HOME
    out = run_converter('dsnet_to_mmpretrain.py', server.url(name), dst)
    assert out.returncode == 0, out.stderr
    assert 'DS-Net-tiny (paddleclas)' in out.stdout
    assert cache_files(torch_home) == [name]
    assert_same(torch.load(dst)['state_dict'], convert(str(server.root / name))[0])


def test_open_mmlab_scheme_is_left_to_mmengine(reference, server, torch_home, tmp_path,
                                               monkeypatch):
    """``open-mmlab://NAME`` goes through mmengine's URL table (extendable with
    $MMENGINE_HOME/open_mmlab.json) and hub cache, as for mmdet's backbones; then the strict fit
    check. ``torchvision://`` and ``mmcls://`` take the same path through mmengine (their weights
    are other backbones', which the fit check refuses as not DS-Net)."""
    name, _ = serve('mmpretrain', reference, server, tmp_path)
    home = tmp_path / 'mmengine_home'
    home.mkdir()
    (home / 'open_mmlab.json').write_text(json.dumps({'dsnet_t_test': server.url(name)}))
    monkeypatch.setenv('MMENGINE_HOME', str(home))
    assert_same(load('open-mmlab://dsnet_t_test', 'backbone.'),
                load(server.root / name, 'backbone.'))
    assert cache_files(torch_home) == [name]


# ------------------------------------------------ failures: clear words, clean cache


def check_failure(url, torch_home, what):
    with pytest.raises(CheckpointDownloadError) as e:
        load(url, None)
    msg = str(e.value)
    assert url in msg, msg
    assert cached_path(url) in msg and str(torch_home) in cached_path(url)
    assert what in msg, msg
    assert 'dsnet_to_mmpretrain.py' in msg and 'checkpoint=' in msg   # the manual way
    assert 'the next run tries again' in msg
    assert cache_files(torch_home) == []
    return msg


def test_http_404(server, torch_home):
    check_failure(server.url('DSNet_tiny_pretrained.pdparams'), torch_home, '404')


def test_refused_connection(torch_home):
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()   # nobody listens there now
    check_failure(f'http://127.0.0.1:{port}/DSNet_tiny_pretrained.pdparams', torch_home,
                  'Connection refused')


def test_name_lookup_failure(torch_home, monkeypatch):
    def no_dns(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')

    monkeypatch.setattr(socket, 'getaddrinfo', no_dns)   # what a machine without DNS answers
    check_failure('https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/'
                  'DSNet_tiny_pretrained.pdparams', torch_home, 'Name or service not known')


def test_body_cut_short_leaves_nothing_and_the_next_try_downloads(reference, server, torch_home,
                                                                  tmp_path):
    name, _ = serve('paddle', reference, server, tmp_path)
    url = server.url(f'flaky/{name}')
    size = (server.root / name).stat().st_size
    msg = check_failure(url, torch_home, f'got {size // 2} of {size} bytes')
    assert 'closed early' in msg
    server.httpd.cut_short = False   # the network is back: downloaded again, whole
    assert_same(load(url, None), load(server.root / name, None))
    assert cache_files(torch_home) == [name]
    assert server.gets == [f'/flaky/{name}'] * 2


def test_configs_url_fails_fast_in_tests(torch_home):
    """The guard of tests/conftest.py: a test that would download from the internet fails at
    once, naming the host, instead of hanging; nothing is written."""
    t = time.time()
    with pytest.raises(RuntimeError, match='must not touch the internet') as e:
        load('https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/'
             'DSNet_tiny_pretrained.pdparams', None)
    assert type(e.value).__name__ == 'InternetAccessInTests'
    assert time.time() - t < 5
    assert cache_files(torch_home) == []
