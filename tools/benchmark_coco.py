"""Evaluate detectors on COCO-format data and tabulate accuracy, size, FLOPs and speed.

    python tools/benchmark_coco.py --pair CONFIG CHECKPOINT [--pair CONFIG2 CHECKPOINT2 ...]
        [--out-dir work_dirs/benchmark_coco] [--speed-images 50] [--no-flops] [--cfg-options ...]

For each (config, checkpoint) pair it runs mmdet's own test loop (``Runner.test`` with the
config's ``test_dataloader`` / ``test_evaluator``: real COCO val2017 under data/coco for the COCO
configs, the embedded shapes set for configs/embedded/), so AP comes from pycocotools through
``CocoMetric``. It also counts parameters, FLOPs at the config's test size (``dsnet_mm.apis.count_flops``,
the count of tools/analysis_tools/get_flops.py, on the first test image after the test pipeline,
attention matmuls included) and measures inference images/s (batch 1, ``model.test_step`` alone,
data loading excluded, after warm-up, as mmdet's ``InferenceBenchmark`` measures it).

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

from dsnet_mm.apis import (BenchmarkError, check_dataset, coco_ap_columns, count_flops,
                          markdown, measure_speed)


def likely_fix(model, state_dict):
    """Why a checkpoint does not fit the detector ``model``, when DS-Net's keys tell: backbone
    (ImageNet) weights given as the detector's, or a DS-Net backbone of another arch."""
    from dsnet_mm.models import DSNet
    from dsnet_mm.models.backbones.dsnet_checkpoint import (DS_BLOCK_KEY_RE, arch_mismatch,
                                                            checkpoint_filter_fn,
                                                            has_reference_names)
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, DSNet):
        return None
    if has_reference_names(state_dict) or any(DS_BLOCK_KEY_RE.match(k) for k in state_dict):
        return ('these are DS-Net backbone weights (an ImageNet classifier or reference file), '
                'not a trained detector: they go in the backbone\'s init_cfg to start training, '
                "e.g. --cfg-options model.backbone.init_cfg.type=Pretrained "
                'model.backbone.init_cfg.checkpoint=FILE model.backbone.init_cfg.prefix=auto; '
                'benchmark the checkpoint that training the detector writes')
    sub = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    return arch_mismatch(checkpoint_filter_fn(sub, backbone), backbone) if sub else None


def check_checkpoint(model, ckpt_path):
    """Clear errors for a missing / corrupt checkpoint or one of another model."""
    from dsnet_mm.utils import check_state_dict_fits, extract_state_dict, read_checkpoint
    try:
        ckpt = read_checkpoint(ckpt_path)
        check_state_dict_fits(model, extract_state_dict(ckpt), f'checkpoint {ckpt_path!r}',
                              lambda sd, *mismatches: likely_fix(model, sd))
    except (FileNotFoundError, RuntimeError, ValueError, TypeError) as e:
        raise BenchmarkError(str(e)) from None


def detector_flops(model, data_batch):
    """FLOPs of the whole detector on one test batch after the data preprocessor, and its size."""
    data = model.data_preprocessor(data_batch)
    flops = count_flops(model, data['inputs'],
                        partial(model.forward, data_samples=data['data_samples']))
    return flops, tuple(data['inputs'].shape[-2:])


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
        flops, flops_shape = detector_flops(model, first)
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


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n', 2)[2])
    p.add_argument('--pair', nargs=2, action='append', metavar=('CONFIG', 'CHECKPOINT'),
                   required=True, help='a config and its checkpoint (repeat for more models)')
    p.add_argument('--out-dir', default='work_dirs/benchmark_coco')
    p.add_argument('--speed-images', type=int, default=50,
                   help='images timed for inference speed (0: skip)')
    p.add_argument('--no-flops', action='store_true', help='skip FLOP counting')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override settings of the config(s), e.g. '
                        'test_dataloader.dataset.data_root=/data/coco/')
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
