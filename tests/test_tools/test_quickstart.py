"""The quick start's pieces: the embedded shapes dataset generator, tools/benchmark_coco.py's
table and the pictures of a finished run, each tool run as a user runs it.

(The quick start itself, tools/quickstart.sh, trains for ~15 min and runs in CI before the tests;
these check its parts on tiny inputs.)
"""
import json
import os.path as osp
import sys

import pytest
import torch

import dsnet_mm  # noqa: F401
from helpers import (QUICKSTART_CONFIG, ROOT, make_shapes, make_tiny_shapes, mmdet_tool, run,
                     subprocess_env, tool_module, write_source, write_tiny_config)

BENCHMARK = osp.join(ROOT, 'tools', 'benchmark_coco.py')


def test_shapes_dataset_is_deterministic_valid_coco(tmp_path):
    from pycocotools.coco import COCO
    a = make_tiny_shapes(tmp_path / 'a', num_train=6, num_val=3)
    b = make_tiny_shapes(tmp_path / 'b', num_train=6, num_val=3)
    for rel in ('annotations/instances_train.json', 'annotations/instances_val.json',
                'train/000000.png', 'train/000005.png', 'val/000002.png'):
        assert open(osp.join(a, rel), 'rb').read() == open(osp.join(b, rel), 'rb').read(), rel
    for split in ('train', 'val'):
        coco = COCO(osp.join(a, 'annotations', f'instances_{split}.json'))
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
            ['circle', 'triangle', 'rectangle']
        anns = coco.loadAnns(coco.getAnnIds())
        assert anns and all(x['iscrowd'] == 0 and x['area'] > 0 and x['segmentation']
                            for x in anns)
        for x in anns:   # the polygon, the box and the area describe the same object
            m = coco.annToMask(x)
            assert abs(m.sum() - x['area']) <= 0.25 * x['area'] + 10
            ys, xs = m.nonzero()
            bx, by, bw, bh = x['bbox']
            assert abs(xs.min() - bx) <= 1.5 and abs(xs.max() + 1 - (bx + bw)) <= 1.5
            assert abs(ys.min() - by) <= 1.5 and abs(ys.max() + 1 - (by + bh)) <= 1.5
    # train and val are different images (disjoint seeds)
    assert open(osp.join(a, 'train/000000.png'), 'rb').read() != \
        open(osp.join(a, 'val/000000.png'), 'rb').read()
    # a complete set is detected and kept; --check reports it
    p = make_shapes(a, 6, 3, 64, '--check')
    assert p.returncode == 0 and 'complete' in p.stdout, p.output
    p = make_shapes(a, 7, 3, 64, '--check')
    assert p.returncode == 1 and 'has 6 images, 7 wanted' in p.stdout, p.output
    p = make_shapes(a, 6, 3, 64)   # complete: kept, not written again
    assert p.returncode == 0 and 'is complete' in p.stdout and 'writing' not in p.stdout, p.output


def test_quickstart_config_fits_the_default_dataset():
    """The quick-start config trains and tests at the image size make_shapes_coco.py writes by
    default, on the folder tools/quickstart.sh writes, with one FPN level per anchor stride; the RoI
    extractors read the lowest of those levels."""
    from mmengine.config import Config
    cfg = Config.fromfile(QUICKSTART_CONFIG)
    size = tool_module('dataset_converters/make_shapes_coco.py').SIZE
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        assert [tuple(t['scale']) for t in loader.dataset.pipeline if t['type'] == 'Resize'] == \
            [(size, size)]
        assert loader.dataset.data_root == 'data/shapes/'
    assert cfg.val_evaluator.ann_file == 'data/shapes/annotations/instances_val.json'
    assert 'make_shapes_coco.py --out data/shapes' in open(osp.join(ROOT, 'tools',
                                                                    'quickstart.sh')).read()
    assert size % cfg.model.data_preprocessor.pad_size_divisor == 0
    m = cfg.model
    strides = list(m.rpn_head.anchor_generator.strides)
    assert strides == [4 * 2**i for i in range(len(strides))]   # from P2 (DSNet's stride 4) up
    assert m.neck.num_outs == len(strides)
    for extractor in (m.roi_head.bbox_roi_extractor, m.roi_head.mask_roi_extractor):
        assert list(extractor.featmap_strides) == strides[:len(extractor.featmap_strides)]


@pytest.fixture(scope='module')
def tiny_cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp('bench')
    data = make_tiny_shapes(d / 'shapes', num_train=4, num_val=4)
    return write_tiny_config(d / 'cfg.py', data, max_epochs=1), d


def _random_init_checkpoint(cfg_path, out, **backbone):
    """A checkpoint of the config's own (untrained) model, its backbone changed by ``backbone``:
    evaluation runs, AP is ~0."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    model_cfg = Config.fromfile(cfg_path).model
    model_cfg.backbone.update(backbone)
    model = MODELS.build(model_cfg)
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, out)
    return str(out)


@pytest.fixture(scope='module')
def benchmark_run(tiny_cfg, reference):
    """One run of tools/benchmark_coco.py: the config's own untrained model (evaluated), then
    six pairs it must refuse with a clear error: another model's checkpoint, a truncated one, a
    missing one, a detector whose DS-Net has other depths, ImageNet backbone weights given as
    the detector's, and a config without a test split. -> (process, out dir)."""
    cfg, d = tiny_cfg
    good = _random_init_checkpoint(cfg, d / 'init.pth')
    bad = d / 'other.pth'
    torch.save({'state_dict': {'backbone.foo.weight': torch.zeros(3)}}, bad)
    truncated = d / 'truncated.pth'
    truncated.write_bytes(open(bad, 'rb').read()[:100])
    shallow = _random_init_checkpoint(cfg, d / 'shallow.pth', arch=dict(
        channels=[64, 128, 320, 512], depths=[1, 1, 1, 1], num_heads=[1, 2, 5, 8]))
    imagenet = write_source(reference, 'paddle', d / 'DSNet_tiny_pretrained.pdparams')
    no_test = d / 'no_test.py'
    no_test.write_text(f'_base_ = [{str(cfg)!r}]\ntest_dataloader = None\ntest_evaluator = None\n')
    out = d / 'bench'
    p = run([sys.executable, BENCHMARK, '--pair', cfg, good, '--pair', cfg, bad,
             '--pair', cfg, truncated, '--pair', cfg, d / 'missing.pth', '--pair', cfg, shallow,
             '--pair', cfg, imagenet, '--pair', no_test, good, '--out-dir', out,
             '--speed-images', '2'], env=subprocess_env(), timeout=600)
    return p, out


def test_benchmark_evaluates_and_writes_table(benchmark_run):
    p, out = benchmark_run
    assert p.returncode == 1, p.output[-4000:]   # the six bad pairs
    res = json.load(open(out / 'benchmark.json'))
    assert len(res['results']) == 1 and len(res['failures']) == 6, res
    r = res['results'][0]
    for task in ('bbox', 'segm'):
        for k in ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'):
            assert isinstance(r[f'{task}_{k}'], float)
    assert 5 < r['params_M'] < 30
    assert r['flops_G'] > 0 and tuple(r['flops_input_hw']) == (64, 64)
    assert r['images_per_s'] > 0
    md = open(out / 'benchmark.md').read()
    assert md.count('\n') == 3 and 'box AP' in md and 'cfg.py' in md
    assert md in p.stdout


def test_benchmark_wrong_checkpoint_is_a_clear_error(benchmark_run):
    p, out = benchmark_run
    assert 'does not fit' in p.stderr and 'missing' in p.stderr
    assert 'truncated, corrupt' in p.stderr
    assert 'checkpoint not found' in p.stderr
    # a DS-Net of other depths: both archs named, not just a count of matching tensors
    assert 'this checkpoint is a custom DS-Net (channels 64, 128, 320, 512; depths 1, 1, 1, 1)' \
        in p.stderr and 'the model is DS-Net-T' in p.stderr
    # ImageNet weights as the detector's: where they go instead
    assert 'these are DS-Net backbone weights' in p.stderr and 'init_cfg' in p.stderr
    assert 'no_test.py has no test_dataloader and no test_evaluator' in p.stderr
    assert 'Traceback' not in p.stderr
    assert '(1 evaluated, 6 failed)' in p.stdout


def test_benchmark_missing_data_says_where_and_how(tiny_cfg, tmp_path):
    cfg, d = tiny_cfg
    out = tmp_path / 'bench'
    missing = tmp_path / 'no_data'
    p = run([sys.executable, BENCHMARK, '--pair', cfg, 'whatever.pth', '--out-dir', out,
             '--cfg-options', f'test_dataloader.dataset.data_root={missing}/',
             f'test_evaluator.ann_file={missing}/a.json'], env=subprocess_env(), timeout=300)
    assert p.returncode == 1
    err = p.stderr
    assert str(missing) in err and 'does not exist' in err
    assert 'cocodataset.org' in err and 'make_shapes_coco.py' in err
    assert 'Traceback' not in err
    assert json.load(open(out / 'benchmark.json'))['failures']


@pytest.mark.slow
def test_pictures_of_a_finished_run(tmp_path):
    """The quick start's last step on a real (tiny) run: mmdet's visualizer draws predictions
    next to the ground truth, mmdet's analyze_logs (seaborn) draws the loss and val mAP curves."""
    from PIL import Image
    data = make_tiny_shapes(tmp_path / 'shapes', num_train=4, num_val=4)
    cfg = write_tiny_config(tmp_path / 'cfg.py', data, max_epochs=2, keep=1, extra='''
        train_cfg = dict(max_epochs=2, val_interval=1)
    ''')
    wd = tmp_path / 'work'
    run([sys.executable, mmdet_tool('train.py'), cfg, '--work-dir', str(wd)], env=subprocess_env(),
        check=True)
    out_dir = tmp_path / 'pictures'
    out = run([sys.executable, osp.join(ROOT, 'tools', 'analysis_tools', 'quickstart_pictures.py'),
               cfg, str(wd / 'epoch_2.pth'), str(wd), '--out-dir', str(out_dir),
               '--num-images', '3'], env=subprocess_env(), timeout=900, check=True).output
    grid = Image.open(out_dir / 'val_predictions.png')
    # 3 images of 64 px, each ground truth | prediction, 2 per row: 2 rows, 2 columns
    assert grid.size == (2 * 128 + 4, 2 * 64 + 4), grid.size
    for name in ('loss.png', 'val_mAP.png'):
        img = Image.open(out_dir / name)
        assert img.format == 'PNG' and min(img.size) > 200
        assert str(out_dir / name) in out
    joined = [json.loads(line) for line in open(out_dir / 'scalars.json')]
    assert sum('coco/bbox_mAP' in r for r in joined) == 2   # one val point per epoch
