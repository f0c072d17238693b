"""Flip and multi-scale test-time augmentation for instance segmentation (Mask R-CNN)."""
from typing import List

import torch
from mmcv.ops import batched_nms
from mmdet.models.test_time_augs import DetTTAModel
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData


def flip_masks(masks: torch.Tensor, direction: str) -> torch.Tensor:
    """(N, H, W) masks of a flipped view, flipped back as ``bbox_flip`` flips its boxes."""
    dims = {'horizontal': [-1], 'vertical': [-2], 'diagonal': [-2, -1]}.get(direction)
    if dims is None:
        raise ValueError(f"flip_direction must be 'horizontal', 'vertical' or 'diagonal', "
                         f'got {direction!r}')
    return masks.flip(dims)


class DetMaskTTAModel(DetTTAModel):
    """mmdet's ``DetTTAModel`` that merges instance masks too (mmdet's asserts that there are
    none).

    Boxes: the views' boxes are flipped back and merged by class-wise NMS, as ``DetTTAModel``
    does. Masks: every view pastes its masks at the original image size (Mask R-CNN with
    ``rescale=True``), so they line up once the flipped views' are flipped back; the mask of a
    kept box is the score-weighted vote of the masks of the boxes NMS merged into it (same
    class, IoU >= the NMS threshold, itself included): a pixel is in when the boxes holding it
    carry at least half of the weight. A model without masks is merged exactly as by
    ``DetTTAModel``.

    Args:
        tta_cfg (dict): ``nms`` (an mmcv ``batched_nms`` config, e.g.
            ``dict(type='nms', iou_threshold=0.5)``) and ``max_per_img``.
        **kwargs: ``module`` (the detector) and the rest of mmengine's ``BaseTTAModel``.
    """

    def _merge_single_sample(self, data_samples: List[DetDataSample]) -> DetDataSample:
        if data_samples[0].pred_instances.get('masks', None) is None:
            return super()._merge_single_sample(data_samples)
        aug_bboxes, aug_scores, aug_labels, aug_masks, img_metas = [], [], [], [], []
        for data_sample in data_samples:
            pred = data_sample.pred_instances
            masks = pred.masks.bool()   # a view without detections may give float zeros
            if data_sample.metainfo.get('flip', False):
                masks = flip_masks(masks, data_sample.flip_direction)
            aug_bboxes.append(pred.bboxes)
            aug_scores.append(pred.scores)
            aug_labels.append(pred.labels)
            aug_masks.append(masks)
            img_metas.append(data_sample.metainfo)
        shapes = {tuple(m.shape[1:]) for m in aug_masks}
        if len(shapes) > 1:
            raise ValueError(f'the views predicted masks of different sizes {sorted(shapes)}: '
                             'they must all be at the original image size (test with '
                             'rescale=True, as mmdet does)')

        bboxes, scores = self.merge_aug_bboxes(aug_bboxes, aug_scores, img_metas)
        labels = torch.cat(aug_labels, dim=0)
        if bboxes.numel() == 0:
            return data_samples[0]
        det_bboxes, keep = batched_nms(bboxes, scores, labels, self.tta_cfg.nms)
        det_bboxes = det_bboxes[:self.tta_cfg.max_per_img]
        keep = keep[:self.tta_cfg.max_per_img]

        masks = torch.cat(aug_masks, dim=0)
        merged = (bbox_overlaps(bboxes[keep], bboxes) >= self.tta_cfg.nms['iou_threshold']) \
            & (labels[keep, None] == labels[None])
        voted = [(scores[m, None, None] * masks[m]).sum(0) >= 0.5 * scores[m].sum()
                 for m in merged]   # one kept box at a time: (N, H, W) floats would not fit

        results = InstanceData()
        results.bboxes = det_bboxes[:, :-1]
        results.scores = det_bboxes[:, -1]
        results.labels = labels[keep]
        results.masks = torch.stack(voted) if voted else masks[keep]
        det_results = data_samples[0]
        det_results.pred_instances = results
        return det_results
