"""Every config of the model index (model-index.yml and its metafiles) loads, builds through its
library's registry, trains one step on a tiny synthetic batch (finite losses, finite gradients on
every trainable backbone and neck parameter) and predicts in the library's data-sample format.
Plus one real ``mim train mmdet configs/mask_rcnn_dsnet_s_fpn_1x_coco.py`` run on a tiny
COCO-format set.

Every config under configs/ but base fragments (any ``_base_`` folder) and mmdeploy's
(configs/deploy/, tests/test_tools/test_deploy.py) must be in the index, so every one is tested, whoever
wrote it: no weights are loaded (init_cfg=None) and the data come from here, not from the config.
"""
import glob
import json
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

import dsnet_mm  # noqa: F401  (the configs' custom_imports)
from dsnet_mm.utils import read_checkpoint
from helpers import MIM, ROOT, build_model, det_batch, load_cfg, model_configs, run

CONFIGS = model_configs()
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
PADDLECLAS_URL = 'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_{}_pretrained.pdparams'


def config_files():
    """The model configs on disk: all but base fragments and mmdeploy's (configs/deploy/)."""
    rel = (osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                                                   recursive=True))
    return sorted(p for p in rel if '_base_' not in p.split(os.sep)
                  and p.split(os.sep)[:2] != ['configs', 'deploy'])


def test_config_list_is_complete():
    """The configs the model zoo and the docs promise (README.md, docs/) are all there and in
    the model index (and so all tested)."""
    expected = set()
    for doc in ['README.md', *glob.glob(osp.join(ROOT, 'docs', '*.md'))]:
        with open(osp.join(ROOT, doc)) as f:
            expected |= set(re.findall(r'configs/[\w./-]+?\.py', f.read()))
    expected = {p for p in expected if '_base_' not in p and not p.startswith('configs/deploy/')}
    assert len(expected) >= 17, sorted(expected)   # the docs name the whole model zoo
    missing = expected - set(CONFIGS)
    assert not missing, f'missing configs: {sorted(missing)}'


# ---------------------------------------------------------------------------------- helpers
def is_timm_backbone(backbone):
    return backbone.get('type') == 'mmpretrain.TIMMBackbone'


def backbone_weights(backbone):
    """The ImageNet file a config's backbone loads: its init_cfg checkpoint, or for timm's DS-Net
    (mmpretrain's TIMMBackbone, ``pretrained=True``) the URL of the model's pretrained_cfg."""
    if is_timm_backbone(backbone):
        import timm

        import dsnet_mm.timm  # noqa: F401  (registers the timm models)
        if not backbone.get('pretrained'):
            return 'none (trained from scratch)'
        return timm.models.get_pretrained_cfg(backbone.model_name).url
    init = backbone.get('init_cfg')
    return init['checkpoint'] if init else 'none (trained from scratch)'


def cls_batch(size=96):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(2)]
    samples = [DataSample(metainfo=dict(img_shape=(size, size))).set_gt_label(i) for i in range(2)]
    return dict(inputs=inputs, data_samples=samples)


def seg_batch(size=(128, 128)):
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=g))
        seg = torch.randint(0, 3, (1, *size), generator=g)
        seg[:, :8] = 255   # some ignored pixels
        s = SegDataSample(metainfo=dict(img_shape=size, ori_shape=size))
        s.gt_sem_seg = PixelData(data=seg)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def shrink_detector_sampling(cfg):
    """Fewer proposals / sampled RoIs / kept detections: the same modules on less work (the
    cascade heads' 4 convs on 3 x 512 RoIs alone take a minute on one CPU core)."""
    tr, te = cfg.model.get('train_cfg'), cfg.model.get('test_cfg')
    if tr is not None and 'rpn_proposal' in tr:
        tr.rpn_proposal.update(nms_pre=200, max_per_img=100)
        for rcnn in (tr.rcnn if isinstance(tr.rcnn, list) else [tr.rcnn]):
            rcnn.sampler.num = 64
    if te is not None and 'rpn' in te:
        te.rpn.update(nms_pre=200, max_per_img=50)
        te.rcnn.max_per_img = 20
    elif te is not None and 'nms_pre' in te:   # one-stage
        te.update(nms_pre=200, max_per_img=20)


def make_batch(cfg, scope, model):
    if scope == 'mmdet':
        roi = getattr(model, 'roi_head', None)
        return det_batch(with_masks=bool(roi is not None and getattr(roi, 'with_mask', False)))
    if scope == 'mmpretrain':
        return cls_batch()
    model.data_preprocessor.size = (128, 128)   # the config's 512 x 512 crop is padding only
    return seg_batch()


def expected_trainable_backbone_params(backbone):
    """Names of the backbone parameters that must get a gradient: those that train
    (requires_grad) and lie on the path to an output."""
    names = {n for n, p in backbone.named_parameters() if p.requires_grad}
    out_indices = getattr(backbone, 'out_indices', None)
    if out_indices is None:   # not DSNet: every trainable parameter
        return names
    last = max(out_indices)
    unused = [f'stages.{i}.' for i in range(last + 1, 4)] + [f'patch_embeds.{i}.' for i in range(last + 1, 4)]
    if not (backbone.final_norm and 3 in out_indices):
        unused.append('norm.')
    return {n for n in names if not n.startswith(tuple(unused))}


def check_predictions(scope, model, preds, batch):
    assert len(preds) == len(batch['inputs'])
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        for p, s in zip(preds, batch['data_samples']):
            assert isinstance(p, DetDataSample)
            inst = p.pred_instances
            n = len(inst)
            assert inst.bboxes.shape == (n, 4) and inst.scores.shape == (n, ) and inst.labels.shape == (n, )
            assert torch.isfinite(inst.bboxes).all()
            if getattr(getattr(model, 'roi_head', None), 'with_mask', False):
                assert inst.masks.shape[0] == n and tuple(inst.masks.shape[1:]) == s.ori_shape
    elif scope == 'mmpretrain':
        from mmpretrain.structures import DataSample
        for p in preds:
            assert isinstance(p, DataSample)
            assert p.pred_score.shape == (model.head.num_classes, )
            assert torch.isclose(p.pred_score.sum(), torch.tensor(1.), atol=1e-4)
            assert p.pred_label.shape == (1, )
    else:
        from mmseg.structures import SegDataSample
        for p, s in zip(preds, batch['data_samples']):
            assert isinstance(p, SegDataSample)
            assert tuple(p.pred_sem_seg.data.shape) == (1, *s.ori_shape)
            assert tuple(p.seg_logits.data.shape[1:]) == s.ori_shape


# ---------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('path', CONFIGS)
def test_config_trains_one_step_and_predicts(path):
    cfg, scope = load_cfg(path)
    assert 'dsnet_mm' in cfg.get('custom_imports', {}).get('imports', []), \
        f'{path} must import the plugin through custom_imports'
    assert 'SyncBN' not in str(cfg.model), f'{path}: SyncBN does not run in one process'
    if path.startswith(('configs/mask', 'configs/cascade', 'configs/retina', 'configs/imagenet',
                        'configs/ade20k')):
        # our release configs start from PaddleClas's ImageNet weights of their own variant
        if is_timm_backbone(cfg.model.backbone):
            assert cfg.model.backbone.pretrained is True
            arch = cfg.model.backbone.model_name.split('_')[1]
            assert backbone_weights(cfg.model.backbone) == PADDLECLAS_URL.format(arch)
        elif 'imagenet' not in path:
            init = cfg.model.backbone.init_cfg
            arch = {'t': 'tiny', 's': 'small', 'b': 'base'}.get(cfg.model.backbone.arch,
                                                              cfg.model.backbone.arch)
            assert init['type'] == 'Pretrained' and init['prefix'] == 'auto'
            assert init['checkpoint'] == PADDLECLAS_URL.format(arch), init['checkpoint']
    if 'embedded' in path:   # the quick start trains from scratch: nothing to download
        assert cfg.model.backbone.init_cfg is None
    if scope == 'mmdet':
        shrink_detector_sampling(cfg)
    model = build_model(cfg, scope)
    model.train()
    batch = make_batch(cfg, scope, model)

    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert losses, 'no losses'
    for k, v in log_vars.items():
        assert np.isfinite(float(torch.as_tensor(v).detach())), f'{k} = {v}'
    assert torch.isfinite(loss) and loss.requires_grad
    loss.backward()

    must = expected_trainable_backbone_params(model.backbone)
    assert must, 'no trainable backbone parameter'
    for name, p in model.backbone.named_parameters():
        if name in must:
            assert p.grad is not None, f'backbone.{name} got no gradient'
            assert torch.isfinite(p.grad).all(), f'backbone.{name} has a non-finite gradient'
        elif not p.requires_grad:
            assert p.grad is None, f'frozen backbone.{name} got a gradient'
    neck = getattr(model, 'neck', None)
    for name, p in (neck.named_parameters() if neck is not None else []):
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), f'neck.{name}'

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, training=False)
        preds = model(**data, mode='predict')
    check_predictions(scope, model, preds, batch)


@pytest.mark.parametrize('path', [p for p in CONFIGS if 'imagenet' in p])
def test_imagenet_classifier_parameter_count(path):
    """DS-Net + GAP + Linear(512 -> 1000): the reference parameter set (docs/model_zoo.md;
    the per-block formula gives 10.534 / 23.005 / 49.344 M, printed 10.53 / 23.01 / 49.34)."""
    cfg, scope = load_cfg(path)
    model = build_model(cfg, scope)
    assert tuple(cfg.model.backbone.out_indices) == (3, )
    n = sum(p.numel() for p in model.parameters())
    expected = {'t': 10_534_312, 's': 23_004_552, 'b': 49_343_752}[osp.basename(path)[6]]
    assert n == expected
    assert model.head.fc.in_features == 512 and model.head.fc.out_features == 1000


# ---------------------------------------------------------------------------------- mim train
def write_tiny_coco(root, n=4, h=128, w=160):
    import cv2
    os.makedirs(osp.join(root, 'imgs'), exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(n):
        img = (rng.random((h, w, 3)) * 60).astype(np.uint8)
        anns = []
        for j in range(2):
            x, y = int(rng.integers(5, w - 70)), int(rng.integers(5, h - 60))
            bw, bh = int(rng.integers(30, 60)), int(rng.integers(30, 50))
            img[y:y + bh, x:x + bw] = 200 if j else 120
            poly = [x, y, x + bw, y, x + bw, y + bh, x, y + bh]
            anns.append(dict(id=len(annotations) + len(anns) + 1, image_id=i + 1, category_id=j + 1,
                             bbox=[x, y, bw, bh], area=bw * bh, iscrowd=0,
                             segmentation=[[float(v) for v in poly]]))
        annotations += anns
        name = f'{i:04d}.jpg'
        cv2.imwrite(osp.join(root, 'imgs', name), img)
        images.append(dict(id=i + 1, file_name=name, height=h, width=w))
    # COCO's own class names, so the config's 80-class metainfo applies unchanged
    cats = [dict(id=1, name='person'), dict(id=2, name='bicycle')]
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=cats), f)
    from pycocotools.coco import COCO
    assert len(COCO(osp.join(root, 'ann.json')).getAnnIds()) == 2 * n


@pytest.mark.slow
def test_mim_train_mask_rcnn_s(tmp_path, mim_mmdet):
    data = tmp_path / 'coco'
    write_tiny_coco(str(data))
    work = tmp_path / 'work'
    assert osp.exists(MIM), f'no mim next to {sys.executable}'
    env = dict(os.environ, PATH=osp.dirname(MIM) + os.pathsep + os.environ.get('PATH', ''),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    opts = [
        'model.backbone.init_cfg=None', 'model.backbone.norm_eval=False',
        f'train_dataloader.dataset.data_root={data}/', 'train_dataloader.dataset.ann_file=ann.json',
        'train_dataloader.dataset.data_prefix.img=imgs/',
        'train_dataloader.dataset.pipeline.2.scale=(160,128)',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'train_dataloader.batch_size=2',
        'train_cfg.max_epochs=1',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'test_cfg=None', 'test_dataloader=None', 'test_evaluator=None',
        'default_hooks.logger.interval=1',
    ]
    cmd = [MIM, 'train', mim_mmdet, 'configs/mask_rcnn_dsnet_s_fpn_1x_coco.py',
           '--work-dir', str(work), '--cfg-options', *opts]
    r = run(cmd, env=env)
    log = r.output
    assert r.returncode == 0, log[-6000:]
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]   # 4 images / batch 2 = 2 iterations
    ckpt_path = work / 'epoch_1.pth'
    assert ckpt_path.exists(), sorted(os.listdir(work))
    assert (work / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')

    # the checkpoint loads, and fits a freshly built model exactly
    ckpt = read_checkpoint(str(ckpt_path))   # weights_only=True, mmengine's classes allow-listed
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    cfg, scope = load_cfg('configs/mask_rcnn_dsnet_s_fpn_1x_coco.py')
    model = build_model(cfg, scope)
    model.load_state_dict(ckpt['state_dict'], strict=True)
    for k, v in ckpt['state_dict'].items():
        assert torch.isfinite(v.float()).all(), k


def test_model_index_lists_every_config():
    """model-index.yml (OpenMMLab format) imports metafiles that list each config exactly once,
    with a collection, task / dataset results and measured params / FLOPs."""
    import yaml
    index = yaml.safe_load(open(osp.join(ROOT, 'model-index.yml')))
    listed = []
    for meta in index['Import']:
        data = yaml.safe_load(open(osp.join(ROOT, meta)))
        collections = {c['Name'] for c in data['Collections']}
        for m in data['Models']:
            assert m['In Collection'] in collections, m['Name']
            assert osp.exists(osp.join(ROOT, m['Config'])), m['Config']
            assert m['Results'] and all({'Task', 'Dataset', 'Metrics'} <= set(r) for r in m['Results'])
            assert 'Paper-reported' in m['Metadata'], m['Name']
            if m['Metadata']['Paper-reported'] is not True:
                assert not any(r['Metrics'] for r in m['Results']), \
                    f"{m['Name']}: metrics we did not measure must be marked paper-reported"
            assert m['Metadata']['Parameters'] > 0 and m['Metadata']['FLOPs'] > 0, m['Name']
            cfg, _ = load_cfg(m['Config'])
            if 'Backbone weights' in m['Metadata']:   # the file the config really loads
                assert m['Metadata']['Backbone weights'] == backbone_weights(cfg.model.backbone), \
                    m['Name']
            if 'Weights' in m:                          # ImageNet: PaddleClas's, marked third-party
                arch = cfg.model.backbone.arch
                assert m['Weights'] == PADDLECLAS_URL.format(
                    {'t': 'tiny', 's': 'small', 'b': 'base'}[arch[0]]), m['Name']
                assert 'third-party' in ''.join(m['Metadata']), m['Name']
            listed.append(m['Config'])
    assert len(listed) == len(set(listed))
    assert set(listed) == set(CONFIGS)
    assert set(listed) == set(config_files()), 'configs on disk and the model index differ'
