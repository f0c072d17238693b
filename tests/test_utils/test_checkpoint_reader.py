"""The reader of a checkpoint file is chosen by its bytes, not its name: torch.save's formats (zip,
legacy) go to torch's ``weights_only`` loader, any other pickle to the numpy-only unpickler of
PaddleClas files. Names and path types do not matter (``.PDPARAMS``, ``.pth``, no extension,
``pathlib.Path``, ``~``); malicious pickles are refused in every format and under every name, and
nothing they carry runs."""
import argparse
import os
import pickle
import random

import numpy as np
import pytest
import torch

from dsnet_mm.utils import load_pdparams, read_checkpoint

NAMES = ['w.pdparams', 'w.PDPARAMS', 'w.pth', 'w']


def paddle_dict():
    """What ``paddle.save`` writes: numpy arrays and its ``StructuredToParameterName@@`` table."""
    g = np.random.default_rng(0)
    return {'stages.0.weight': g.standard_normal((4, 3)).astype('float32'),
            'stages.0.bias': np.arange(4, dtype='int64'),
            'StructuredToParameterName@@': {'stages.0.weight': 'linear_0.w_0',
                                            'stages.0.bias': 'linear_0.b_0'}}


def write_paddle(path, protocol=2):
    with open(path, 'wb') as f:
        pickle.dump(paddle_dict(), f, protocol=protocol)
    return path


def assert_paddle_tensors(sd):
    ref = paddle_dict()
    assert list(sd) == ['stages.0.weight', 'stages.0.bias']
    for k in sd:
        assert torch.equal(sd[k], torch.from_numpy(ref[k])), k


@pytest.mark.parametrize('protocol', [2, 4])
@pytest.mark.parametrize('name', NAMES)
def test_paddle_file_under_any_name_and_path_type(name, protocol, tmp_path):
    path = write_paddle(tmp_path / name, protocol)
    assert_paddle_tensors(read_checkpoint(str(path)))
    assert_paddle_tensors(read_checkpoint(path))          # pathlib.Path
    assert_paddle_tensors(load_pdparams(path))


@pytest.mark.parametrize('legacy', [False, True])
@pytest.mark.parametrize('name', NAMES)
def test_torch_file_under_any_name(name, legacy, tmp_path):
    sd = {'a': torch.arange(6.).reshape(2, 3), 'b': torch.ones(2, dtype=torch.int64)}
    torch.save({'state_dict': sd}, tmp_path / name, _use_new_zipfile_serialization=not legacy)
    got = read_checkpoint(tmp_path / name)['state_dict']
    assert all(torch.equal(got[k], sd[k]) for k in sd)


def test_home_directory_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    write_paddle(tmp_path / 'weights.pdparams')
    assert_paddle_tensors(read_checkpoint('~/weights.pdparams'))
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: '{tmp_path}/nope.pth'"):
        read_checkpoint('~/nope.pth')


def test_paddle_file_named_pth_loads_into_dsnet(reference, tmp_path, monkeypatch):
    """The whole path a user takes: init_cfg names PaddleClas weights saved under ``~`` as .pth."""
    from dsnet_mm.models import DSNet
    from helpers import write_source
    monkeypatch.setenv('HOME', str(tmp_path))
    write_source(reference, 'paddle', tmp_path / 'dsnet_tiny.pth')
    write_source(reference, 'paddle', tmp_path / 'DSNet_tiny_pretrained.pdparams')
    loaded = []
    for ckpt in ('~/dsnet_tiny.pth', tmp_path / 'DSNet_tiny_pretrained.pdparams'):
        model = DSNet('tiny', init_cfg=dict(type='Pretrained', checkpoint=ckpt))
        model.init_weights()
        loaded.append(model.state_dict())
    assert list(loaded[0]) == list(loaded[1])
    assert all(torch.equal(loaded[0][k], loaded[1][k]) for k in loaded[0])


# ------------------------------------------------------------------ refused and corrupt files


class Evil:
    """Runs a shell command when unpickled."""

    def __reduce__(self):
        return (os.system, (f'touch {os.environ["EVIL_MARK"]}', ))


def _write(obj, path, fmt):
    if fmt == 'zip':
        torch.save(obj, path)
    elif fmt == 'legacy':
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    else:   # plain pickle, protocol 2 (PaddleClas') or 4 (torch's legacy reader stops at FRAME)
        with open(path, 'wb') as f:
            pickle.dump(obj, f, protocol=int(fmt[-1]))


FORMATS = ['zip', 'legacy', 'pickle2', 'pickle4']


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('name', NAMES)
def test_malicious_pickle_refused_in_every_form_and_name(name, fmt, tmp_path, monkeypatch):
    mark = tmp_path / 'pwned'
    monkeypatch.setenv('EVIL_MARK', str(mark))
    path = tmp_path / name
    _write({'w': np.zeros(2, dtype='float32'), 'x': Evil()}, path, fmt)
    with pytest.raises(RuntimeError, match=r"refusing to unpickle .*(posix|os)\.system") as e:
        read_checkpoint(path)
    assert 'truncated, corrupt' not in str(e.value)
    with pytest.raises(Exception):
        load_pdparams(path)
    assert not mark.exists()


@pytest.mark.parametrize('fmt', ['zip', 'pickle4'])
@pytest.mark.parametrize('name', ['x.pth', 'x.pdparams', 'x'])
def test_disallowed_objects_are_named(name, fmt, tmp_path):
    obj = {'w': torch.zeros(2) if fmt == 'zip' else np.zeros(2), 'args': argparse.Namespace(lr=1)}
    _write(obj, tmp_path / name, fmt)
    with pytest.raises(RuntimeError, match=r'refusing to unpickle .*argparse\.Namespace'):
        read_checkpoint(tmp_path / name)


@pytest.mark.parametrize('name', NAMES)
def test_truncated_empty_and_random_files_are_corrupt_not_unsafe(name, tmp_path):
    sd = {'a': torch.randn(64, 64)}
    torch.save(sd, tmp_path / 'whole.pth')
    data = (tmp_path / 'whole.pth').read_bytes()
    paddle = write_paddle(tmp_path / 'whole.pdparams').read_bytes()
    for content in (data[:len(data) // 2], paddle[:len(paddle) // 2], b'',
                    random.Random(0).randbytes(len(data))):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(RuntimeError) as e:
            read_checkpoint(path)
        msg = str(e.value)
        assert f"cannot read checkpoint '{path}' ({len(content)} bytes)" in msg, msg
        assert 'truncated, corrupt or not a PyTorch checkpoint' in msg, msg
        assert 'refusing' not in msg
