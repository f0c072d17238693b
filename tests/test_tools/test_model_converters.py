"""The converter tools as a user runs them, on the arguments a hurried user gives: a directory
for DST or SRC, a missing SRC, DST equal to SRC. Each is a clear error (exit 1), nothing is left
behind and the input is never overwritten silently."""
import os

import pytest
import torch

from dsnet_mm.models import DSNet
from helpers import run_converter


def convert(script, *args, as_script=False):
    p = run_converter(script, *args, as_script=as_script)
    return p.returncode, p.output


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A reference DS-Net-T checkpoint and a dsnet_mm (mmpretrain-layout) one."""
    from reference_dsnet import ReferenceDSNet
    root = tmp_path_factory.mktemp('conv')
    torch.save({'model': ReferenceDSNet('tiny').state_dict()}, root / 'reference.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in DSNet('tiny').state_dict().items()}},
               root / 'dsnet_t_mmpretrain.pth')
    return root


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize('script, src', [('dsnet_to_mmpretrain.py', 'reference.pth'),
                                         ('mmpretrain_to_dsnet.py', 'dsnet_t_mmpretrain.pth')])
def test_dst_that_is_a_directory_is_refused_and_nothing_is_left(script, src, files, tmp_path):
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    before = listing(tmp_path)
    rc, output = convert(script, files / src, out_dir)
    assert rc == 1, output
    stem = src[:-len('.pth')]
    assert (f"error: DST '{out_dir}' is a directory: give the path of the file to write, e.g. "
            f"'{out_dir / stem}_converted.pth'") in output
    assert 'Traceback' not in output and 'IsADirectoryError' not in output
    assert listing(tmp_path) == before and listing(out_dir) == []   # no temporary file


@pytest.mark.parametrize('script', ['dsnet_to_mmpretrain.py', 'mmpretrain_to_dsnet.py'])
def test_src_that_is_a_directory_is_named_as_such(script, tmp_path):
    (tmp_path / 'weights').mkdir()
    (tmp_path / 'weights' / 'DSNet_small_pretrained.pdparams').write_bytes(b'')
    rc, output = convert(script, tmp_path / 'weights', tmp_path / 'out.pth')
    assert rc == 1, output
    assert (f"error: '{tmp_path / 'weights'}' is a directory, not a checkpoint file: name the "
            'file (it holds DSNet_small_pretrained.pdparams). SRC is a') in output
    assert 'init_cfg' not in output   # advice for model configs does not apply to a converter
    assert not (tmp_path / 'out.pth').exists()


def test_missing_src_gets_converter_advice(tmp_path):
    rc, output = convert('dsnet_to_mmpretrain.py', tmp_path / 'nope.pth', tmp_path / 'out.pth',
                         as_script=True)
    assert rc == 1, output
    assert (f"error: checkpoint not found: '{tmp_path / 'nope.pth'}'. SRC is a reference DS-Net "
            '.pth or a PaddleClas DSNet_*_pretrained.pdparams') in output
    assert 'init_cfg' not in output


@pytest.mark.parametrize('script, src', [('dsnet_to_mmpretrain.py', 'reference.pth'),
                                         ('mmpretrain_to_dsnet.py', 'dsnet_t_mmpretrain.pth')])
def test_dst_equal_to_src_is_refused_without_force(script, src, files, tmp_path):
    path = tmp_path / src
    path.write_bytes((files / src).read_bytes())
    before = path.read_bytes()
    rc, output = convert(script, path, path)
    assert rc == 1, output
    assert (f"error: DST '{path}' is SRC: writing it would replace the input checkpoint. Give "
            'another DST, or --force to replace SRC') in output
    assert path.read_bytes() == before and listing(tmp_path) == [src]


def test_force_replaces_src_with_the_conversion(files, tmp_path):
    path = tmp_path / 'dsnet_t.pth'
    path.write_bytes((files / 'dsnet_t_mmpretrain.pth').read_bytes())
    rc, output = convert('mmpretrain_to_dsnet.py', path, path, '--force')
    assert rc == 0, output
    converted = torch.load(path)
    assert 'blocks1.0.conv1.weight' in converted['model']   # the reference layout
    assert listing(tmp_path) == ['dsnet_t.pth']


def test_a_failed_atomic_save_leaves_no_temporary_file(tmp_path):
    from dsnet_mm.utils import save_checkpoint_atomic
    with pytest.raises(Exception):
        save_checkpoint_atomic({'weights': torch.zeros(3), 'unpicklable': lambda: None},
                               str(tmp_path / 'out.pth'))
    assert listing(tmp_path) == []
    with pytest.raises(IsADirectoryError, match='is a directory'):
        save_checkpoint_atomic({'weights': torch.zeros(3)}, str(tmp_path))
    assert listing(tmp_path) == []
