"""A full disk while ``AtomicCheckpointHook`` saves: a real mmengine ``Runner`` trains a tiny
model; the file write of one checkpoint fails with ``ENOSPC`` after half its bytes (as a full
disk does). The run stops with an error naming the work dir, the bytes a checkpoint needs and
the fix; no temporary file is left; the previous checkpoint and ``last_checkpoint`` are intact;
a real ``--resume`` (``resume=True``) continues from the previous epoch once space is back."""
import errno
import os
import os.path as osp

import pytest
import torch
from mmengine.fileio import LocalBackend
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import dsnet_mm.engine  # noqa: F401  (registers AtomicCheckpointHook)


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 64)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((out - data_samples[:, None]) ** 2).mean())
        return out


class ToyDataset(Dataset):
    metainfo = dict()

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(8, 64, generator=g), torch.randn(8, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], data_samples=self.y[i])


class RecordStart(Hook):
    """Records the epoch and the weights training starts from (after a resume has loaded)."""

    def before_train(self, runner):
        self.epoch = runner.epoch
        self.weight = runner.model.linear.weight.detach().clone()


def make_runner(work_dir, name, max_epochs, resume=False, hooks=()):
    return Runner(
        model=ToyModel(), work_dir=str(work_dir), experiment_name=name,
        train_dataloader=dict(dataset=ToyDataset(), batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', interval=1,
                                           max_keep_ckpts=1),
                           logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=list(hooks), resume=resume, default_scope='mmengine')


@pytest.fixture
def full_disk_at(monkeypatch):
    """``full_disk_at(name)``: writing the file ``name`` fails with ENOSPC after half its bytes,
    leaving those bytes on disk as a real full disk does. -> the sizes written before failing."""
    real_put = LocalBackend.put
    written = []

    def arm(name):
        def put(self, obj, filepath):
            if osp.basename(str(filepath)) != name:
                return real_put(self, obj, filepath)
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
                f.flush()
                written.append(os.path.getsize(filepath))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(LocalBackend, 'put', put)
        return written
    return arm


def _last(work_dir):
    return (work_dir / 'last_checkpoint').read_text().strip()


def test_full_disk_while_saving_then_resume(tmp_path, full_disk_at, monkeypatch):
    wd = tmp_path / 'work'
    written = full_disk_at('.epoch_2.pth.tmp')
    with pytest.raises(OSError) as e:
        make_runner(wd, 'full_disk', max_epochs=3).train()
    msg = str(e.value)
    print(msg)
    assert e.value.errno == errno.ENOSPC
    assert written and written[0] > 0           # the failure came mid-file
    size = osp.getsize(wd / 'epoch_1.pth')
    assert f'in the work_dir {wd} ' in msg, msg
    assert f'needs about {size} bytes' in msg and 'the size of epoch_1.pth' in msg, msg
    assert f'Free at least {size} bytes' in msg and '--resume' in msg, msg
    assert f'{wd}/epoch_1.pth (named by {wd}/last_checkpoint) is intact' in msg, msg
    assert sorted(n for n in os.listdir(wd) if n.endswith(('.pth', '.tmp'))) == ['epoch_1.pth']
    assert _last(wd) == str(wd / 'epoch_1.pth')
    epoch_1 = torch.load(wd / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert epoch_1['meta']['epoch'] == 1

    monkeypatch.undo()                           # space freed
    start = RecordStart()
    runner = make_runner(wd, 'full_disk_resumed', max_epochs=3, resume=True, hooks=[start])
    runner.train()
    assert start.epoch == 1                      # continues after epoch 1, not from scratch
    assert torch.equal(start.weight, epoch_1['state_dict']['linear.weight'])
    assert runner.epoch == 3
    assert _last(wd) == str(wd / 'epoch_3.pth')
    assert torch.load(wd / 'epoch_3.pth', map_location='cpu',
                      weights_only=False)['meta']['epoch'] == 3
    assert not [n for n in os.listdir(wd) if n.endswith('.tmp')]


def test_full_disk_at_the_first_save(tmp_path, full_disk_at):
    """No earlier checkpoint: the size needed is that of the weights and optimizer state."""
    wd = tmp_path / 'work'
    full_disk_at('.epoch_1.pth.tmp')
    with pytest.raises(OSError) as e:
        make_runner(wd, 'full_disk_first', max_epochs=2).train()
    msg = str(e.value)
    assert e.value.errno == errno.ENOSPC
    needed = 2 * (64 * 64 + 64) * 4             # weights + SGD momentum, float32
    assert f'needs about {needed} bytes' in msg and 'weights and optimizer state' in msg, msg
    assert 'no earlier checkpoint exists' in msg, msg
    assert not (wd / '.epoch_1.pth.tmp').exists() and not (wd / 'last_checkpoint').exists()
