import sys

import pytest

from helpers import ROOT, run


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


@pytest.fixture(scope='session')
def venv_python():
    """The interpreter running the tests (the project's .venv under tools/run_tests.sh)."""
    return sys.executable


def _check_env(*args):
    out = run([sys.executable, 'tools/check_env.py', *args], timeout=120)
    assert out.returncode == 0 and out.stdout.strip(), out.output
    return out.stdout.strip()


@pytest.fixture(scope='session')
def stack():
    """The OpenMMLab stack under test ('upstream' or 'onedl'), as tools/check_env.py tells it."""
    name = _check_env('--stack')
    assert name in ('upstream', 'onedl'), name
    return name


@pytest.fixture(scope='session')
def mim_mmdet():
    """How ``mim train/test/run`` names mmdet on the stack under test: ``mmdet`` upstream,
    ``mmdetection`` on OneDL (onedl-mim cannot resolve ``mmdet``; docs/installation.md, "Stacks")."""
    return _check_env('--mim-name', 'mmdet')


@pytest.fixture(scope='module')
def reference():
    """DS-Net-T as the public reference computes it (tests/reference_dsnet.py) with non-trivial
    weights: the oracle of the converters and the source of checkpoints in foreign layouts."""
    import torch
    from reference_dsnet import ReferenceDSNet, randomize_
    torch.manual_seed(0)
    return randomize_(ReferenceDSNet('tiny'), seed=3).eval()


@pytest.fixture(autouse=True)
def _seed():
    import torch
    torch.manual_seed(0)
    yield


# ------------------------------------------------------------------ no test touches the internet
class InternetAccessInTests(RuntimeError):
    """Raised (not an OSError, so no library swallows it as a network hiccup) when a test tries
    to reach a host other than this machine: it fails at once instead of hanging on a download."""


def _is_local(host):
    import socket
    host = host.decode() if isinstance(host, bytes) else str(host)
    return (host in ('localhost', '', socket.gethostname()) or host.startswith('127.')
            or host in ('::1', '0.0.0.0'))


@pytest.fixture(autouse=True, scope='session')
def _no_internet():
    """Only loopback in tests: connections and name look-ups of other hosts raise
    ``InternetAccessInTests`` (e.g. a config whose PaddleClas URL was not overridden)."""
    import socket
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise InternetAccessInTests(f'a test tried to connect to {address}: tests must not '
                                        'touch the internet (serve files on 127.0.0.1)')
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_local(host):
            raise InternetAccessInTests(f'a test tried to look up {host!r}: tests must not touch '
                                        'the internet (serve files on 127.0.0.1)')
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
    yield
    socket.socket.connect, socket.getaddrinfo = real_connect, real_getaddrinfo
