"""Parameters and FLOPs of a dsnet_mm config (mmdet, mmseg or mmpretrain), without any dataset.

    python tools/analysis_tools/get_flops.py configs/mask_rcnn_dsnet_s_fpn_1x_coco.py
    python tools/analysis_tools/get_flops.py configs/imagenet/dsnet_s_8xb128_in1k.py --backbone-only
    python tools/analysis_tools/get_flops.py CONFIG --shape 800 1280 --json out.json

Why not ``mim run mmdet get_flops``: mmdet's (and mmseg's) tool takes its input from the config's
val dataloader, so it needs COCO / ADE20K on disk, and it counts whatever the SDPA kernel leaves
out. This tool feeds a synthetic image of the config's test size (detection 800 x 1280 = the
1333 x 800 test scale padded to 32, ADE20K 512 x 512, ImageNet 224 x 224), counts with
``mmengine.analysis.get_model_complexity_info`` through ``dsnet_mm.apis.count_flops``, as
tools/benchmark_coco.py counts (one multiply-add = one FLOP, as fvcore). The
DS-Net / DS-FPN attention matmuls are counted: under the counter's ``torch.jit`` tracing the
attention runs as explicit softmax(QK^T)V, not as the SDPA op the counter would skip.
Detectors: by default backbone + neck (``extract_feat``), which is well defined. ``--full`` adds
the heads as mmdet's tool counts them (``mode='tensor'``): RPN on the whole map, and box *and*
mask heads on every proposal the RPN keeps, a number that depends on the weights (a random-init
RPN keeps a different count than a trained one), so full-detector FLOPs are only indicative.
"""
import argparse
import json
from functools import partial

import torch
from mmengine.config import Config, DictAction

import dsnet_mm  # noqa: F401  (registers DSNet / DSFPN)
from dsnet_mm.apis import build_without_weights, count_flops

DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 512), 'mmpretrain': (224, 224)}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                   help='input size (default: the task test size, see above)')
    p.add_argument('--backbone-only', action='store_true', help='count model.backbone alone')
    p.add_argument('--full', action='store_true',
                   help='detectors: count the heads too (mmdet tensor mode; proposal-dependent)')
    p.add_argument('--json', help='append the result as one JSON line to this file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args()


def build(cfg):
    model, scope = build_without_weights(cfg)
    return model.eval(), scope


def count(model, scope, shape, backbone_only, full=False):
    h, w = shape
    x = torch.rand(1, 3, h, w)
    if backbone_only:
        return count_flops(model.backbone, x)
    if scope == 'mmdet' and not full:
        return count_flops(model, x, model.extract_feat)
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                                             batch_input_shape=(h, w), scale_factor=(1., 1.)))
        return count_flops(model, x, partial(model.forward, data_samples=[sample], mode='tensor'))
    return count_flops(model, x, partial(model.forward, mode='tensor'))   # mmseg, mmpretrain


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model, scope = build(cfg)
    shape = tuple(args.shape) if args.shape else DEFAULT_SHAPES[scope]
    params_all = sum(p.numel() for p in model.parameters())
    params_bb = sum(p.numel() for p in model.backbone.parameters())
    flops = count(model, scope, shape, args.backbone_only, args.full)
    part = ('backbone' if args.backbone_only else 'backbone+neck'
            if scope == 'mmdet' and not args.full else 'whole model')
    res = dict(config=args.config, task=scope, shape=list(shape), counted=part,
               params_M=round((params_bb if args.backbone_only else params_all) / 1e6, 3),
               backbone_params_M=round(params_bb / 1e6, 3), flops_G=round(flops / 1e9, 2))
    print(json.dumps(res))
    if args.json:
        with open(args.json, 'a') as f:
            f.write(json.dumps(res) + '\n')


if __name__ == '__main__':
    main()
