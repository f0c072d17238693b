"""What the tests share (as mmdet's tests/test_models/test_backbones/utils.py): the repository
root, one subprocess runner and its environment, the embedded shapes dataset with a tiny child of
the quick-start config, the model configs of model-index.yml with builders and synthetic batches
for them, and weights that make equality tests mean something.

pytest.ini puts the repository and tests/ on ``sys.path`` (``pythonpath``); the tools run as a
user runs them, in a subprocess (``run``)."""
import copy
import functools
import os
import os.path as osp
import pickle
import socket
import subprocess
import sys
import textwrap

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
QUICKSTART_CONFIG = osp.join(ROOT, 'configs', 'embedded', 'mask_rcnn_dsnet_t_fpn_shapes.py')
VENV_BIN = osp.dirname(sys.executable)
MIM = osp.join(VENV_BIN, 'mim')   # the mim of the environment under test


# ------------------------------------------------------------------ subprocesses
def subprocess_env(extra_pythonpath=(), venv_on_path=False):
    """This process's environment for a child: the repository (and ``extra_pythonpath``, e.g.
    a folder with a test hook) importable, warnings quiet, one OpenMP thread. ``venv_on_path``:
    the environment's bin/ first on PATH, for commands that start ``python`` (mim)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([*map(str, extra_pythonpath), ROOT,
                                         env.get('PYTHONPATH', '')])
    env['PYTHONWARNINGS'] = 'ignore'
    env.setdefault('OMP_NUM_THREADS', '1')   # no spin-waiting on a busy machine
    if venv_on_path:
        env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    return env


def run(cmd, cwd=ROOT, env=None, timeout=600, check=False):
    """Run ``cmd`` (items may be paths) in ``cwd`` with ``env`` (this process's when None).
    -> ``subprocess.CompletedProcess`` with text ``stdout``, ``stderr`` and ``output`` (both).
    ``check``: fail unless it exits 0, showing the end of its output."""
    cmd = [str(c) for c in cmd]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    p.output = p.stdout + p.stderr
    assert not check or p.returncode == 0, f'{cmd} failed ({p.returncode}):\n{p.output[-6000:]}'
    return p


def run_converter(script, *args, as_script=False):
    """One of tools/model_converters/ on the command line ``args``: its ``main(argv)`` in this
    process (the converters import torch and mmengine, about 6 s of CPU for a fresh interpreter),
    or, ``as_script``, as a user runs it. -> an object with ``returncode``, ``stdout``, ``stderr``
    and ``output`` (both), as ``run`` gives."""
    path = osp.join(ROOT, 'tools', 'model_converters', script)
    if as_script:
        return run([sys.executable, path, *args], timeout=300)
    import contextlib
    import io
    import types
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = tool_module(f'model_converters/{script}').main([str(a) for a in args])
        except SystemExit as e:   # argparse errors exit 2, as on the command line
            rc = e.code
    rc = rc if isinstance(rc, int) else (0 if rc is None else 1)
    return types.SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue(),
                                 output=out.getvalue() + err.getvalue())


def tool_module(script):
    """A script under tools/ (e.g. ``'model_converters/dsnet_to_mmpretrain.py'``) as a module, for
    tests that call its functions: the tools are scripts, not on ``sys.path``."""
    import importlib.util
    path = osp.join(ROOT, 'tools', script)
    spec = importlib.util.spec_from_file_location(osp.basename(script)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mmdet_tool(name):
    """mmdet's own tools/ script (train.py, test.py), as ``mim`` runs it."""
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ the embedded shapes dataset
def make_shapes(out, num_train=8, num_val=4, size=64, *args):
    """tools/dataset_converters/make_shapes_coco.py as a user runs it (``args``: e.g. --check)."""
    return run([sys.executable, osp.join(ROOT, 'tools', 'dataset_converters', 'make_shapes_coco.py'),
                '--out', out, '--num-train', num_train, '--num-val', num_val, '--size', size, *args],
               timeout=300)


def make_tiny_shapes(out, num_train=8, num_val=4, size=64):
    p = make_shapes(out, num_train, num_val, size)
    assert p.returncode == 0, p.output[-3000:]
    return str(out)


def write_tiny_config(path, data_root, max_epochs=4, batch_size=4, keep=3, extra='',
                      size=64):
    """A config inheriting the quick-start config: tiny data, ``size`` px, every epoch a
    checkpoint, logging every iteration with no smoothing."""
    data_root = osp.join(str(data_root), '')
    text = textwrap.dedent(f'''
        _base_ = [{QUICKSTART_CONFIG!r}]
        data_root = {data_root!r}
        train_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs'),
        ]
        test_pipeline = [
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
        ]
        train_dataloader = dict(batch_size={batch_size}, num_workers=0, persistent_workers=False,
                                dataset=dict(data_root=data_root, pipeline=train_pipeline))
        val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root, pipeline=test_pipeline))
        test_dataloader = val_dataloader
        val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
        test_evaluator = val_evaluator
        train_cfg = dict(max_epochs={max_epochs}, val_interval=1000)
        default_hooks = dict(logger=dict(interval=1),
                             checkpoint=dict(interval=1, max_keep_ckpts={keep}))
        log_processor = dict(window_size=1)
    ''') + textwrap.dedent(extra)
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


# ------------------------------------------------------------------ model configs
def indexed_models():
    """The models of model-index.yml's metafiles (OpenMMLab format), in order."""
    import yaml
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        metafiles = yaml.safe_load(f)['Import']
    models = []
    for meta in metafiles:
        with open(osp.join(ROOT, meta)) as f:
            models += yaml.safe_load(f)['Models']
    return models


def model_configs():
    """The model configs the model index lists: the ones every config test runs on."""
    return sorted({m['Config'] for m in indexed_models()})


@functools.lru_cache(maxsize=None)
def _read_cfg(path):
    from mmengine.config import Config
    return Config.fromfile(osp.join(ROOT, path))


def load_cfg(path):
    """(config, default scope) of a repository config: a copy, free to change (each file is
    parsed once per session: its mmdet:: / mmseg:: bases make parsing cost)."""
    cfg = copy.deepcopy(_read_cfg(path))
    scope = cfg.get('default_scope')
    assert scope in ('mmdet', 'mmseg', 'mmpretrain'), f'{path}: default_scope {scope!r}'
    return cfg, scope


def build_model(cfg, scope):
    """The config's model, randomly initialised, no checkpoint read (no download in tests)."""
    from dsnet_mm.apis import build_without_weights
    model, built_in = build_without_weights(cfg, init_weights=True)
    assert built_in == scope, (built_in, scope)
    return model


def det_batch(with_masks, sizes=((128, 160), (120, 152))):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    inputs, samples = [], []
    g = torch.Generator().manual_seed(0)
    for h, w in sizes:
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g))
        boxes = torch.tensor([[10., 12., 70., 80.], [60., 40., 140., 110.], [5., 70., 50., 115.]])
        boxes[:, 0::2].clamp_(max=w - 1)
        boxes[:, 1::2].clamp_(max=h - 1)
        masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
        for m, (x1, y1, x2, y2) in zip(masks, boxes.int().tolist()):
            m[y1:y2, x1:x2] = 1
        gt = InstanceData(bboxes=boxes, labels=torch.tensor([0, 1, 0]))
        if with_masks:
            gt.masks = BitmapMasks(masks, h, w)
        s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        scale_factor=(1., 1.), img_id=len(samples)))
        s.gt_instances = gt
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


# ------------------------------------------------------------------ weights
def randomize_bn_(model, seed=1):
    """Non-trivial BatchNorm statistics and affine weights (fresh ones are the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model


def write_source(reference, layout, path):
    """``reference`` (a ReferenceDSNet) saved in one of the layouts the converters read."""
    from reference_dsnet import deit_checkpoint, paddle_state_dict
    if layout == 'paddle':
        with open(path, 'wb') as f:
            pickle.dump(paddle_state_dict(reference), f, protocol=2)
    elif layout == 'deit':
        torch.save(deit_checkpoint(reference), path)
    elif layout == 'state_dict':
        torch.save({'state_dict': reference.state_dict()}, path)
    elif layout == 'flat':
        torch.save(reference.state_dict(), path)
    elif layout == 'ema_only':
        torch.save({'model_ema': reference.state_dict()}, path)
    return path


def convert_dsnet_reference(state_dict):
    """``checkpoint_filter_fn`` split into ``(backbone, head)`` dicts: ``head`` has the
    ``weight`` / ``bias`` of the 1000-class linear (empty if the file has none)."""
    from collections import OrderedDict

    from dsnet_mm.models import checkpoint_filter_fn
    backbone, head = OrderedDict(), OrderedDict()
    for key, value in checkpoint_filter_fn(state_dict).items():
        if key.startswith('head.'):
            head[key[5:]] = value
        else:
            backbone[key] = value
    return backbone, head


class LoopbackServer:
    """An HTTP server on 127.0.0.1 with an ephemeral port, for download tests: serves ``handler``
    in a thread, records ``(method, path)`` in ``httpd.requests``, and stops itself after
    ``lifetime_s`` if a test forgets to (``stop()`` also releases handlers that wait on
    ``httpd.release``). Extra attributes for the handler go in ``**state``."""

    def __init__(self, handler, lifetime_s=120, **state):
        import http.server
        import threading
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []
        self.httpd.release = threading.Event()
        for k, v in state.items():
            setattr(self.httpd, k, v)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.watchdog = threading.Timer(lifetime_s, self.stop)
        self.watchdog.daemon = True
        self.watchdog.start()
        self.stopped = False

    def url(self, path):
        return f'http://127.0.0.1:{self.httpd.server_port}/{path.lstrip("/")}'

    @property
    def gets(self):
        return [p for m, p in self.httpd.requests if m == 'GET']

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self.httpd.release.set()
            self.watchdog.cancel()
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(10)
