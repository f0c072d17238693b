"""Pictures of a finished detection run, made with mmdet's own tools (the quick start's last step).

1. ``mim test mmdet CONFIG --checkpoint CKPT --show-dir``: mmdet's ``DetLocalVisualizer`` draws
   the ground truth and the prediction side by side for the first ``--num-images`` held-out
   (test split) images; they are tiled into one PNG.
2. ``mim run mmdet analyze_logs plot_curve``: the training losses over the iterations and the
   validation box / mask mAP over the epochs, from the run's ``vis_data/scalars.json`` (the logs
   of a resumed run are joined in time order first).

    python tools/analysis_tools/quickstart_pictures.py CONFIG CHECKPOINT WORK_DIR --out-dir DIR

Writes DIR/val_predictions.png, DIR/loss.png, DIR/val_mAP.png and prints their paths.
Headless: matplotlib's Agg backend.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

LOSS_KEYS = ('loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask')
MAP_KEYS = ('bbox_mAP', 'segm_mAP')


def mim(*args, cwd=None):
    """Run ``mim ARGS`` with this interpreter's environment; raise with its output on failure."""
    exe = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(os.environ, MPLBACKEND='Agg',
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    p = subprocess.run([exe, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, env=env, cwd=cwd)
    if p.returncode:
        raise RuntimeError(f'mim {" ".join(map(str, args[:3]))} ... failed ({p.returncode}):\n'
                           f'{p.stdout[-4000:]}')
    return p.stdout


def predictions_next_to_ground_truth(config, checkpoint, out_dir, num_images, columns=2,
                                     mmdet='mmdet'):
    """``mim test --show-dir`` on the first ``num_images`` test images, tiled into one PNG."""
    import numpy as np
    from PIL import Image
    test_dir = osp.join(out_dir, 'test')
    shutil.rmtree(test_dir, ignore_errors=True)
    mim('test', mmdet, config, '--checkpoint', checkpoint, '--work-dir', test_dir,
        '--show-dir', 'show', '--cfg-options', f'test_dataloader.dataset.indices={num_images}')
    shown = sorted(glob.glob(osp.join(test_dir, '*', 'show', '*.png')) +
                   glob.glob(osp.join(test_dir, '*', 'show', '*.jpg')))
    if not shown:
        raise RuntimeError(f'mim test --show-dir wrote no image under {test_dir}')
    tiles = [np.asarray(Image.open(p).convert('RGB')) for p in shown]
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // columns)
    gap = 4
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * (h + gap):r * (h + gap) + t.shape[0], c * (w + gap):c * (w + gap) + t.shape[1]] = t
    out = osp.join(out_dir, 'val_predictions.png')
    Image.fromarray(grid).save(out, optimize=True)
    return out, len(tiles)


def joined_training_log(work_dir, out):
    """The ``scalars.json`` of every training run in ``work_dir`` (a resumed run has several),
    in time order, as one file for analyze_logs."""
    runs = sorted(glob.glob(osp.join(work_dir, '[0-9]*_[0-9]*', 'vis_data', 'scalars.json')))
    lines = [line for run in runs for line in open(run)
             if line.strip() and ('"loss"' in line or 'coco/' in line)]
    if not any('"loss"' in line for line in lines):
        raise RuntimeError(f'no training log (*/vis_data/scalars.json with losses) in {work_dir}')
    with open(out, 'w') as f:
        f.writelines(lines)
    return out, lines


def first_val_epoch(lines):
    """The epoch of the first validation in the log (analyze_logs' ``--eval-interval`` expects
    the metric there)."""
    epoch = 1
    for line in lines:
        record = json.loads(line)
        if any(k.startswith('coco/') for k in record):
            return epoch
        epoch = record.get('epoch', epoch)
    return None


def curves(work_dir, out_dir, mmdet='mmdet'):
    log, lines = joined_training_log(work_dir, osp.join(out_dir, 'scalars.json'))
    logged = set().union(*(json.loads(line) for line in lines if '"loss"' in line))
    keys = [k for k in LOSS_KEYS if k in logged]
    loss_png = osp.join(out_dir, 'loss.png')
    mim('run', mmdet, 'analyze_logs', 'plot_curve', log, '--keys', *keys, '--legend', *keys,
        '--backend', 'agg', '--style', 'whitegrid', '--title', 'training losses',
        '--out', loss_png)
    evaluated = set().union(*(json.loads(line) for line in lines if 'coco/' in line))
    maps = [k for k in MAP_KEYS if f'coco/{k}' in evaluated]
    val_interval = first_val_epoch(lines)
    if not maps or val_interval is None:
        return loss_png, None
    map_png = osp.join(out_dir, 'val_mAP.png')
    mim('run', mmdet, 'analyze_logs', 'plot_curve', log, '--keys', *maps,
        '--legend', *[{'bbox_mAP': 'box mAP', 'segm_mAP': 'mask mAP'}[k] for k in maps],
        '--eval-interval', str(val_interval), '--backend', 'agg', '--style', 'whitegrid',
        '--title', 'held-out val mAP (pycocotools)', '--out', map_png)
    return loss_png, map_png


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('work_dir', help='the training run (its */vis_data/scalars.json)')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--num-images', type=int, default=6)
    parser.add_argument('--mim-name', default='mmdet',
                        help="how mim names mmdet on this stack: 'mmdet' upstream, 'mmdetection' "
                             'on OneDL (tools/check_env.py --mim-name mmdet)')
    args = parser.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    grid, n = predictions_next_to_ground_truth(args.config, args.checkpoint, args.out_dir,
                                               args.num_images, mmdet=args.mim_name)
    loss_png, map_png = curves(args.work_dir, args.out_dir, mmdet=args.mim_name)
    print(f'predictions (right) next to ground truth (left), {n} held-out images: {grid}')
    print(f'training losses over the iterations: {loss_png}')
    print('val box / mask mAP over the epochs: ' +
          (map_png or 'none (the run logged no validation)'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
