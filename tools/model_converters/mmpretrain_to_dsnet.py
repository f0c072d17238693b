"""Convert a dsnet_mm / mmpretrain DS-Net checkpoint back to the reference PyTorch layout.

    python tools/model_converters/mmpretrain_to_dsnet.py SRC DST [--force]

SRC: a checkpoint with ``backbone.*`` keys (an mmpretrain classifier, or any detector/segmentor
built on DSNet: only the backbone is kept, and ``head.fc.*`` if present). DST is a DeiT-style
``{'model': state_dict}`` with the reference names (``patch_embed1.proj``, ``blocks1.0.conv1``,
...), for code written against the reference implementation.
DST is written atomically (nothing is left behind on an error) and may be SRC only with
``--force``.
"""
import argparse
import sys

SRC_HINT = ('SRC is a dsnet_mm / mmpretrain checkpoint with backbone.* keys (e.g. one written by '
            'dsnet_to_mmpretrain.py or an mmpretrain ImageNet run).')


def main(argv=None):
    from dsnet_mm.models.backbones.dsnet_checkpoint import detect_arch, to_reference
    from dsnet_mm.utils import (check_conversion_paths, extract_state_dict, read_checkpoint,
                                save_checkpoint_atomic)

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='dsnet_mm / mmpretrain checkpoint with backbone.* keys')
    parser.add_argument('dst', help='output reference-layout checkpoint (.pth)')
    parser.add_argument('--force', action='store_true',
                        help='allow DST to be SRC (replaced once the result is complete)')
    args = parser.parse_args(argv)
    try:
        check_conversion_paths(args.src, args.dst, args.force)
        sd = extract_state_dict(read_checkpoint(args.src, missing_hint=SRC_HINT))
        backbone = {k[9:]: v for k, v in sd.items() if k.startswith('backbone.')}
        if not backbone:
            raise ValueError(f'{args.src} has no "backbone." tensors; is it a dsnet_mm checkpoint?')
        arch = detect_arch(backbone)
        head = {k[8:]: v for k, v in sd.items() if k.startswith('head.fc.')}
        ref = to_reference(backbone, head)
        save_checkpoint_atomic({'model': ref}, args.dst)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f'DS-Net-{arch}: {len(ref)} tensors in the reference layout -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
