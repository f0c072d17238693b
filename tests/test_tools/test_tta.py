"""Test-time augmentation: ``DetMaskTTAModel`` merges flipped views' boxes and masks, and
mmdet's tools/test.py ``--tta`` (what ``mim test ... --tta`` runs) evaluates the quick-start
config's TTA on boxes and masks."""
import pickle
import sys

import torch
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData

import dsnet_mm  # noqa: F401
from dsnet_mm.models import DetMaskTTAModel
from helpers import make_tiny_shapes, mmdet_tool, run, subprocess_env, write_tiny_config


def view(boxes, scores, masks, flip):
    from mmdet.structures import DetDataSample
    s = DetDataSample(metainfo=dict(ori_shape=(8, 10), img_shape=(8, 10), flip=flip,
                                    flip_direction='horizontal' if flip else None))
    s.pred_instances = InstanceData(bboxes=torch.tensor(boxes), scores=torch.tensor(scores),
                                    labels=torch.zeros(len(scores), dtype=torch.long),
                                    masks=masks)
    return s


class Unused(torch.nn.Module):
    """The detector slot of a TTA model whose merging alone is tested."""

    def test_step(self, data):
        raise AssertionError('not called')


def test_flipped_views_merge_boxes_and_vote_masks():
    # one object in columns 0-3 of an 8 x 10 image, seen by three views, two of them flipped
    left = torch.zeros(1, 8, 10, dtype=torch.bool)
    left[0, :, 0:4] = True
    wide = torch.zeros(1, 8, 10, dtype=torch.bool)
    wide[0, :, 0:5] = True   # the best view's mask has one column too many
    tta = DetMaskTTAModel(module=Unused(), tta_cfg=ConfigDict(
        nms=dict(type='nms', iou_threshold=0.5), max_per_img=10))
    merged = tta.merge_preds([[
        view([[6., 0., 10., 8.]], [0.5], wide.flip(-1), flip=True),
        view([[0., 0., 4., 8.]], [0.375], left, flip=False),
        view([[6., 0., 10., 8.]], [0.375], left.flip(-1), flip=True),
    ]])[0].pred_instances
    # one box, the best view's flipped back
    assert merged.bboxes.tolist() == [[0., 0., 4., 8.]] and merged.scores.tolist() == [0.5]
    # its mask is voted: the column only the best view marks (0.5 of 1.25) is out
    assert torch.equal(merged.masks, left)


def test_mim_test_tta_merges_boxes_and_masks(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    data = make_tiny_shapes(tmp_path / 'shapes', num_train=1, num_val=2, size=64)
    cfg = write_tiny_config(tmp_path / 'cfg.py', data)
    from mmengine.config import Config
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(cfg).model)   # random weights: many low-score boxes
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, tmp_path / 'init.pth')

    out = tmp_path / 'preds.pkl'
    p = run([sys.executable, mmdet_tool('test.py'), cfg, tmp_path / 'init.pth', '--tta',
             '--out', out, '--work-dir', tmp_path / 'work'], env=subprocess_env(), check=True)
    assert 'coco/bbox_mAP' in p.output and 'coco/segm_mAP' in p.output
    assert 'Cannot find ``tta_model``' not in p.output   # the config's TTA, not mmdet's default
    preds = pickle.load(open(out, 'rb'))
    assert len(preds) == 2
    for pred in preds:
        inst = pred['pred_instances']
        n = len(inst['scores'])
        assert 0 < n <= 50 and inst['bboxes'].shape == (n, 4)
        assert len(inst['masks']) == n
        assert all(tuple(m['size']) == tuple(pred['ori_shape']) == (64, 64)
                   for m in inst['masks'])
