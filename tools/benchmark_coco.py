"""Evaluate detectors on COCO-format data and tabulate accuracy, size, FLOPs and speed.

    python tools/benchmark_coco.py --pair CONFIG CHECKPOINT [--pair CONFIG2 CHECKPOINT2 ...]
        [--out-dir work_dirs/benchmark_coco] [--speed-images 50] [--no-flops] [--cfg-options ...]

For each (config, checkpoint) pair it runs mmdet's own test loop (``Runner.test`` with the
config's ``test_dataloader`` / ``test_evaluator``: real COCO val2017 under data/coco for the COCO
configs, the embedded shapes set for configs/embedded/), so AP comes from pycocotools through
``CocoMetric``. It also counts parameters, FLOPs at the config's test size (the count of
tools/analysis_tools/get_flops.py on the first test image after the test pipeline, attention
matmuls included) and measures inference images/s (batch 1, ``model.test_step`` alone, data
loading excluded, after warm-up, on this machine) with mmdet's ``InferenceBenchmark`` loop.

Writes ``<out-dir>/benchmark.md`` (Markdown table) and ``<out-dir>/benchmark.json``.
Exit status 0 when every pair was evaluated, 1 otherwise (each failure is explained).
"""
import argparse
import json
import os
import os.path as osp
import sys
import warnings
from functools import partial

from analysis_tools.get_flops import count_flops as count_model_flops   # the tools' one count

BOX_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
HOW_TO_GET_DATA = (
    'COCO 2017: download val2017.zip and annotations_trainval2017.zip from '
    'https://cocodataset.org/#download and unpack them so that data/coco/val2017/ and '
    'data/coco/annotations/instances_val2017.json exist (or point the config at your copy with '
    '--cfg-options test_dataloader.dataset.data_root=... test_evaluator.ann_file=...). '
    'The embedded shapes set (configs/embedded/): python tools/dataset_converters/make_shapes_coco.py')


class BenchmarkError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _dataset_paths(cfg):
    """(annotation file, image dir, evaluator annotation file) the test loop will read."""
    ds = cfg.test_dataloader.dataset
    while 'dataset' in ds and 'ann_file' not in ds:   # wrappers (ConcatDataset, RepeatDataset)
        ds = ds.dataset
    root = ds.get('data_root', '') or ''
    ann = ds.get('ann_file', '')
    ann = osp.join(root, ann) if ann and not osp.isabs(ann) else ann
    prefix = ds.get('data_prefix', {}) or {}
    img = prefix.get('img', prefix.get('img_path', ''))
    img = osp.join(root, img) if not osp.isabs(img) else img
    ev = cfg.get('test_evaluator', {})
    ev = ev[0] if isinstance(ev, (list, tuple)) else ev
    return ann, img, ev.get('ann_file')


def check_dataset(cfg, cfg_path):
    ann, img, ev_ann = _dataset_paths(cfg)
    problems = []
    if ann and not osp.isfile(ann):
        problems.append(f'annotation file {ann!r} (test_dataloader) does not exist')
    if img and not osp.isdir(img):
        problems.append(f'image directory {img!r} (test_dataloader) does not exist')
    if ev_ann and not osp.isfile(ev_ann):
        problems.append(f'annotation file {ev_ann!r} (test_evaluator) does not exist')
    if problems:
        raise BenchmarkError(f'{cfg_path}: the test data is missing: ' + '; '.join(problems) +
                             f' (relative to {os.getcwd()}).\n  How to get it: {HOW_TO_GET_DATA}')


def check_checkpoint(model, ckpt_path):
    """Clear errors for a missing / corrupt checkpoint or one of another model."""
    from dsnet_mm.utils import check_state_dict_fits, extract_state_dict, read_checkpoint
    try:
        ckpt = read_checkpoint(ckpt_path)
        check_state_dict_fits(model, extract_state_dict(ckpt), f'checkpoint {ckpt_path!r}')
    except (FileNotFoundError, RuntimeError, ValueError, TypeError) as e:
        raise BenchmarkError(str(e)) from None


def count_flops(model, data_batch):
    """FLOPs of the whole detector on one test batch after the data preprocessor, and its size."""
    data = model.data_preprocessor(data_batch)
    flops = count_model_flops(model, data['inputs'], partial(model.forward, data_samples=data['data_samples']))
    return flops, tuple(data['inputs'].shape[-2:])


def measure_speed(model, dataloader, n_images, n_warmup=3):
    """Images/s of ``model.test_step`` over ``dataloader`` (batch 1) after ``n_warmup`` images,
    timed by mmdet's ``InferenceBenchmark`` loop (None when the set has no image left to time)."""
    import torch
    from mmdet.utils.benchmark import BaseBenchmark, InferenceBenchmark

    class LoadedModelBenchmark(InferenceBenchmark):
        # mmdet's __init__ would build the model and the dataloader again and move them to CUDA
        def __init__(self, max_iter):
            BaseBenchmark.__init__(self, max_iter, log_interval=max_iter + 1, num_warmup=n_warmup)
            self.model, self.data_loader = model, dataloader

    max_iter = min(n_warmup + n_images, len(dataloader))
    if max_iter <= n_warmup:
        return None
    sync = torch.cuda.synchronize
    if not torch.cuda.is_available():   # mmdet's loop synchronizes CUDA unconditionally
        torch.cuda.synchronize = lambda device=None: None
    try:
        with torch.no_grad():
            return LoadedModelBenchmark(max_iter).run_once()['fps']
    finally:
        torch.cuda.synchronize = sync


def build_test_runner(cfg_path, ckpt_path, args):
    """mmengine's Runner for the config's test loop on the checkpoint, after checking that the
    config, its test data and the checkpoint are there and that the checkpoint fits."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    if not osp.isfile(cfg_path):
        raise BenchmarkError(f'config not found: {cfg_path!r}')
    cfg = Config.fromfile(cfg_path)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    check_dataset(cfg, cfg_path)
    if not osp.isfile(ckpt_path):
        raise BenchmarkError(f'checkpoint not found: {ckpt_path!r}')
    cfg.work_dir = osp.join(args.out_dir, osp.splitext(osp.basename(cfg_path))[0])
    cfg.load_from = ckpt_path
    cfg.resume = False
    cfg.launcher = 'none'
    cfg.get('default_hooks', {}).pop('visualization', None)
    runner = Runner.from_cfg(cfg)
    check_checkpoint(runner.model, ckpt_path)   # before mmengine's strict=False load hides a mismatch
    return runner


def benchmark_one(cfg_path, ckpt_path, args):
    import torch
    runner = build_test_runner(cfg_path, ckpt_path, args)
    metrics = runner.test()   # mmdet's TestLoop + the config's evaluator (pycocotools)
    model = runner.model.eval()
    flops, flops_shape = None, None
    if not args.no_flops:
        first = {k: v[:1] for k, v in next(iter(runner.test_dataloader)).items()}
        flops, flops_shape = count_flops(model, first)
    speed = None
    if args.speed_images > 0:
        one = runner.build_dataloader(dict(runner.cfg.test_dataloader, batch_size=1, num_workers=0,
                                           persistent_workers=False))
        speed = measure_speed(model, one, args.speed_images)
    row = dict(config=cfg_path, checkpoint=ckpt_path,
               params_M=sum(p.numel() for p in model.parameters()) / 1e6,
               flops_G=None if flops is None else flops / 1e9,
               flops_input_hw=flops_shape, images_per_s=speed,
               device='cuda' if next(model.parameters()).is_cuda else 'cpu',
               torch_threads=torch.get_num_threads())
    row.update(coco_ap_columns(metrics))
    return row


def coco_ap_columns(metrics):
    """``{'bbox_mAP': ..., 'segm_mAP_50': ...}`` from CocoMetric's ``coco/...`` results (None when
    a task was not evaluated): the table's AP columns."""
    return {f'{task}_{k}': None if metrics.get(f'coco/{task}_{k}') is None
            else float(metrics[f'coco/{task}_{k}'])
            for task in ('bbox', 'segm') for k in BOX_KEYS}


def _fmt(v, nd=1, scale=1.0):
    return '-' if v is None or v < 0 else f'{v * scale:.{nd}f}'   # COCO: -1 = no such objects


def markdown(rows):
    head = ('| config | box AP | AP50 | AP75 | APs | APm | APl | mask AP | AP50 | AP75 | APs | APm '
            '| APl | params (M) | FLOPs (G) @ input | img/s |')
    lines = [head, '|' + '---|' * 16]
    for r in rows:
        cells = [osp.basename(r['config'])]
        for task in ('bbox', 'segm'):
            cells += [_fmt(r.get(f'{task}_{k}'), 1, 100) for k in BOX_KEYS]
        hw = r.get('flops_input_hw')
        cells += [_fmt(r['params_M'], 2),
                  _fmt(r['flops_G'], 2) + (f' @ {hw[1]}x{hw[0]}' if hw else ''),
                  _fmt(r['images_per_s'], 1) + f' ({r["device"]})']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def evaluation_parser(doc, out_dir):
    """The arguments of COCO evaluation tools (this one and tools/deploy/eval_onnx.py), their
    usage taken from the tool's docstring."""
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=doc.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc.split('\n', 2)[2])
    p.add_argument('--out-dir', default=out_dir)
    p.add_argument('--speed-images', type=int, default=50,
                   help='images timed for inference speed (0: skip)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings of the config(s), e.g. '
                        'test_dataloader.dataset.data_root=/data/coco/')
    return p


def parse_args(argv=None):
    p = evaluation_parser(__doc__, 'work_dirs/benchmark_coco')
    p.add_argument('--pair', nargs=2, action='append', metavar=('CONFIG', 'CHECKPOINT'),
                   required=True, help='a config and its checkpoint (repeat for more models)')
    p.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    return p.parse_args(argv)


def main(argv=None):
    warnings.filterwarnings('ignore', category=UserWarning)
    args = parse_args(argv)
    import dsnet_mm  # noqa: F401  (registers DSNet / DSFPN)
    os.makedirs(args.out_dir, exist_ok=True)
    rows, failures = [], []
    for cfg_path, ckpt_path in args.pair:
        print(f'[benchmark] {cfg_path} + {ckpt_path}', flush=True)
        try:
            rows.append(benchmark_one(cfg_path, ckpt_path, args))
        except BenchmarkError as e:
            print(f'[benchmark] ERROR: {e}', file=sys.stderr, flush=True)
            failures.append(dict(config=cfg_path, checkpoint=ckpt_path, error=str(e)))
    md = markdown(rows) if rows else ''
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(md)
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(dict(results=rows, failures=failures), f, indent=2)
    if md:
        print('\n' + md)
    print(f'[benchmark] wrote {osp.join(args.out_dir, "benchmark.md")} and benchmark.json '
          f'({len(rows)} evaluated, {len(failures)} failed)')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
