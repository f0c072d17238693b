"""Shared by tests/test_resume.py, tests/test_distributed.py and tests/test_main_job.py: a tiny
shapes dataset and a child config of the quick-start config that trains on it in seconds."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BASE_CONFIG = osp.join(ROOT, 'configs', 'embedded', 'mask_rcnn_dsnet_t_fpn_shapes.py')


def make_tiny_shapes(out, num_train=8, num_val=4, size=64):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    try:
        import make_shapes_coco
    finally:
        sys.path.pop(0)
    assert make_shapes_coco.main(['--out', str(out), '--num-train', str(num_train),
                                  '--num-val', str(num_val), '--size', str(size)]) == 0
    return str(out)


def write_tiny_config(path, data_root, max_epochs=4, batch_size=4, keep=3, extra='',
                      size=64):
    """A config inheriting the quick-start config: tiny data, ``size`` px, every epoch a
    checkpoint, logging every iteration with no smoothing."""
    data_root = osp.join(str(data_root), '')
    text = textwrap.dedent(f'''
        _base_ = [{BASE_CONFIG!r}]
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


def mmdet_tool(name):
    import mmdet
    return osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', name)


def subprocess_env(extra_pythonpath=()):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([*map(str, extra_pythonpath), ROOT,
                                         env.get('PYTHONPATH', '')])
    env['PYTHONWARNINGS'] = 'ignore'
    env.setdefault('OMP_NUM_THREADS', '1')   # no spin-waiting on a busy machine
    return env


def run(cmd, timeout=300, **kw):
    """Run ``cmd``; on failure show the end of its output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout, **kw)
    assert p.returncode == 0, f'{cmd} failed ({p.returncode}):\n{p.stdout[-6000:]}'
    return p.stdout
