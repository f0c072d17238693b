"""A killed ``mim train`` leaves no process behind: not mmdet's train.py (mim's child) and not
its persistent DataLoader workers (``ExitWithLauncherHook`` in the embedded config)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import MIM, make_tiny_shapes, subprocess_env, write_tiny_config

pytestmark = pytest.mark.slow


def _proc_table():
    """{pid: (ppid, state, start_time)} from /proc."""
    table = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open(f'/proc/{name}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(')') + 2:].split()
        table[int(name)] = (int(fields[1]), fields[0], fields[19])
    return table


def _descendants(pid):
    table, found, todo = _proc_table(), {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _, start) in table.items():
            if ppid == parent and child not in found:
                found[child] = start
                todo.append(child)
    return found


def _alive(pid, start):
    info = _proc_table().get(pid)
    return info is not None and info[2] == start and info[1] != 'Z'   # same process, not a zombie


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG is Linux')
def test_sigkill_of_mim_train_leaves_no_process(tmp_path, mim_mmdet):
    data = make_tiny_shapes(tmp_path / 'shapes', num_train=16, num_val=4)
    cfg = write_tiny_config(tmp_path / 'cfg.py', data, max_epochs=200, batch_size=2, extra='''
        train_dataloader.update(num_workers=2, persistent_workers=True)
    ''')
    env = subprocess_env(venv_on_path=True)
    log_path = tmp_path / 'train.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([MIM, 'train', mim_mmdet, cfg, '--work-dir', str(tmp_path / 'work')],
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        deadline = time.time() + 400
        while True:   # until train.py and its two workers run and iterations are logged
            tree = _descendants(proc.pid)
            if len(tree) >= 3 and 'Epoch(train)' in log_path.read_text():
                break
            assert proc.poll() is None, log_path.read_text()[-4000:]
            assert time.time() < deadline, 'training did not start in time'
            time.sleep(0.5)
        tree = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)   # the launcher only, as an OOM killer or a user would
        proc.wait()
        deadline = time.time() + 10
        while any(_alive(p, s) for p, s in tree.items()) and time.time() < deadline:
            time.sleep(0.2)
        survivors = {p: _proc_table().get(p) for p, s in tree.items() if _alive(p, s)}
        assert not survivors, f'alive 10 s after the kill: {survivors}'
        assert 'ExitWithLauncherHook: this trainer' in log_path.read_text()
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)   # whatever is left of this test's session
        except ProcessLookupError:
            pass
