"""Convert public DS-Net weights into an mmpretrain ``ImageClassifier`` checkpoint.

    python tools/model_converters/dsnet_to_mmpretrain.py SRC DST [--force]

SRC: a reference PyTorch checkpoint (DeiT-style dict with ``model`` / ``model_ema`` /
``state_dict``, or a flat dict) or a PaddleClas ``DSNet_*_pretrained.pdparams`` (read with a
numpy-only unpickler; Paddle is not needed), as a path or an ``http(s)://`` URL (downloaded once
into torch's hub cache, ``$TORCH_HOME/hub/checkpoints``), e.g.
``https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_small_pretrained.pdparams``.
The variant is detected from the keys. DST is written
as ``{'state_dict', 'meta'}``; it loads with ``strict=True`` into the ImageClassifier of
``configs/imagenet/dsnet_*`` and into detectors / segmentors through
``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``.

The result is checked before it is written: the converted weights are loaded strictly into a
freshly built mmpretrain ImageClassifier.
DST is written atomically (nothing is left behind on an error) and may be SRC only with
``--force``.
"""
import argparse
import os.path as osp
import sys
import time


SRC_HINT = ('SRC is a reference DS-Net .pth or a PaddleClas DSNet_*_pretrained.pdparams, as a '
            'path or an http(s):// URL.')


def build_classifier(arch: str, num_classes: int):
    import dsnet_mm  # noqa: F401  (registers DSNet)
    from mmpretrain.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DSNet', arch=arch, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=512)))


def convert(src: str):
    """Returns ``(state_dict, meta)`` of the mmpretrain checkpoint."""
    from dsnet_mm.models.backbones.dsnet_checkpoint import (checkpoint_filter_fn, detect_arch,
                                                            is_paddle_layout)
    from dsnet_mm.utils import extract_state_dict, read_checkpoint

    raw = extract_state_dict(read_checkpoint(src, missing_hint=SRC_HINT))
    if not raw:
        raise ValueError(f'{src}: no tensors found')
    if any(k.startswith('backbone.') for k in raw):
        raise ValueError(f'{src} is already an OpenMMLab checkpoint (keys start with "backbone."); '
                         'no conversion is needed: load it with prefix="backbone."')
    if not any(k.startswith(('patch_embed1.', 'blocks1.')) for k in raw):
        raise ValueError(f'{src} is not a DS-Net reference checkpoint: its keys start with '
                         f'{sorted({k.split(".")[0] for k in raw})[:6]}, expected patch_embed1..4, '
                         'blocks1..4, norm, head')
    converted = checkpoint_filter_fn(raw)
    arch = detect_arch(converted)
    # the reference's classifier is mmpretrain's LinearClsHead ``head.fc``
    state_dict = {(f'head.fc.{k[5:]}' if k.startswith('head.') else f'backbone.{k}'): v
                  for k, v in converted.items()}
    meta = dict(arch=arch, source=osp.basename(src),
                source_layout='paddleclas' if is_paddle_layout(raw) else 'pytorch-reference',
                num_classes=(int(state_dict['head.fc.weight'].shape[0])
                             if 'head.fc.weight' in state_dict else None),
                converted_by='dsnet_mm tools/model_converters/dsnet_to_mmpretrain.py',
                time=time.strftime('%Y-%m-%d %H:%M:%S'))
    return state_dict, meta


def verify(state_dict, meta):
    """Load strictly into a fresh ImageClassifier (or the backbone alone when there is no head)."""
    from dsnet_mm.utils import check_state_dict_fits
    if meta['num_classes'] is None:
        from dsnet_mm.models import DSNet
        model = DSNet(meta['arch'])
        sd = {k[len('backbone.'):]: v for k, v in state_dict.items()}
    else:
        model = build_classifier(meta['arch'], meta['num_classes'])
        sd = state_dict
    check_state_dict_fits(model, sd, 'the converted checkpoint')
    model.load_state_dict(sd, strict=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='reference .pth/.pth.tar or PaddleClas .pdparams (path or URL)')
    parser.add_argument('dst', help='output mmpretrain checkpoint (.pth)')
    parser.add_argument('--force', action='store_true',
                        help='allow DST to be SRC (replaced once the result is complete)')
    args = parser.parse_args(argv)
    from dsnet_mm.utils import check_conversion_paths, save_checkpoint_atomic
    try:
        check_conversion_paths(args.src, args.dst, args.force)
        state_dict, meta = convert(args.src)
        verify(state_dict, meta)
        save_checkpoint_atomic({'state_dict': state_dict, 'meta': meta}, args.dst)
    except (OSError, ValueError, RuntimeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    n_backbone = sum(k.startswith('backbone.') for k in state_dict)
    print(f'DS-Net-{meta["arch"]} ({meta["source_layout"]}): {n_backbone} backbone tensors'
          + (f' + {meta["num_classes"]}-class head' if meta['num_classes'] else ', no head')
          + f' -> {args.dst} (verified with strict=True)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
