"""Latency of a detector exported to ONNX (ONNX Runtime) next to PyTorch, on this machine.

    .venv-deploy/bin/python tools/deploy/benchmark_ort.py            # DS-Net-S Mask R-CNN, 800 x 1333
    .venv-deploy/bin/python tools/deploy/benchmark_ort.py --config configs/retinanet_dsnet_t_fpn_1x_coco.py \
        --deploy-cfg configs/deploy/detection_onnxruntime_dynamic.py --size 512 512 --iters 5

Exports CONFIG (random weights unless --checkpoint) as tools/deploy/export_onnx.py does and times
one image of --size (the network input: batch 1, already normalised; 800 x 1333 is COCO's test scale)
through three paths, with the same number of intra-op threads:

  * ONNX Runtime   ``InferenceSession.run`` on end2end.onnx (CPU provider, ORT's default graph
                   optimisations): dets, labels, 28 x 28 mask probabilities
  * PyTorch        mmdeploy's PyTorch model (the rewritten model the export traced,
                   dsnet_mm/deploy/pytorch_model.py): the same outputs, so the same work
  * PyTorch mmdet  mmdet's own ``model.predict`` (what the config runs without mmdeploy): its
                   post-processing is mmdet's and it pastes the masks into the image

Random weights are drawn by ``dsnet_mm.deploy.pytorch_model.random_detector_weights_``: mmdet's initial
heads give every box the same score (no detection over the config's score threshold, or all of them
tied), which would make the post-processing and the mask head unrealistically cheap or expensive;
there the classifiers give logits of std 1 on a probe image, so that a realistic number of boxes
passes the threshold (the config's own, 0.05) and NMS keeps ``max_per_img``. Reported per path: wall time and process CPU time (all threads) per image, median
and range over --iters runs after --warmup, and the load average before and after. On a machine
shared with other jobs, wall time depends on the load; CPU time much less (with one thread it is
close to the time on an idle core). Writes --out (JSON) and prints a Markdown table.
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time
import warnings


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split('\n', 2)[2])
    p.add_argument('--config', default='configs/mask_rcnn_dsnet_s_fpn_1x_coco.py')
    p.add_argument('--deploy-cfg', default='configs/deploy/instance-seg_onnxruntime_dynamic.py')
    p.add_argument('--checkpoint', default=None, help='trained weights (default: random)')
    p.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    p.add_argument('--threads', type=int, default=1,
                   help='intra-op threads for PyTorch and ONNX Runtime alike (default 1: on a '
                        'shared machine more threads spin-wait on each other)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--iters', type=int, default=3)
    p.add_argument('--onnx', default=None, help='an already exported end2end.onnx of CONFIG '
                                                '(skips the export)')
    p.add_argument('--out', default='work_dirs/deploy/benchmark_ort.json')
    return p.parse_args(argv)


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def summary(ts):
    return dict(median=statistics.median(ts), min=min(ts), max=max(ts))


def main(argv=None):
    warnings.filterwarnings('ignore')
    args = parse_args(argv)
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import torch
    torch.set_num_threads(args.threads)
    from dsnet_mm.deploy import apply_compat
    for line in apply_compat():
        print(f'[compat] patched {line}', flush=True)
    import numpy as np
    import onnxruntime as ort
    from mmdeploy.utils import load_config
    from mmengine.registry import init_default_scope

    import dsnet_mm  # noqa: F401
    from dsnet_mm.deploy import export_onnx
    from dsnet_mm.deploy.pytorch_model import (data_samples_for, mmdeploy_pytorch_model,
                                               random_detector_weights_)
    from mmdet.registry import MODELS

    h, w = args.size
    cfg = load_config(args.config)[0]
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    if args.checkpoint:
        from mmengine.runner import load_checkpoint

        from dsnet_mm.utils import allow_mmengine_checkpoints
        allow_mmengine_checkpoints()   # runner checkpoints load under weights_only=True
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    else:
        random_detector_weights_(model, probe_hw=(h // 2, w // 2))

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx
        if onnx_path is None:
            ckpt = osp.join(tmp, 'weights.pth')
            torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
            t0 = time.perf_counter()
            onnx_path = export_onnx(args.deploy_cfg, cfg, ckpt, work_dir=tmp, shape=(h, w),
                                    quiet=True)
            print(f'[bench] exported in {time.perf_counter() - t0:.0f} s', flush=True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(onnx_path, so, providers=['CPUExecutionProvider'])
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        feed = {'input': x.numpy()}
        results = {}
        load0 = os.getloadavg()[0]

        def record(name, fn, what):
            l0 = os.getloadavg()[0]
            wall, cpu = timed(fn, args.warmup, args.iters)
            results[name] = dict(what=what, wall=summary(wall), cpu=summary(cpu),
                                 load_before=l0, load_after=os.getloadavg()[0])
            print(f'[bench] {name:14s} wall {statistics.median(wall) * 1e3:8.0f} ms   '
                  f'CPU {statistics.median(cpu) * 1e3:8.0f} ms   (load {l0:.1f})', flush=True)

        out_ort = sess.run(None, feed)
        record('ONNX Runtime', lambda: sess.run(None, feed), 'InferenceSession.run(end2end.onnx)')
        with mmdeploy_pytorch_model(model, load_config(args.deploy_cfg)[0]) as run:
            out_pt = [o.numpy() for o in run(x)]
            record('PyTorch', lambda: run(x), "mmdeploy's rewritten model (same outputs)")
        with torch.no_grad():
            out_mmdet = model.predict(x, data_samples_for(x), rescale=False)
            record('PyTorch mmdet', lambda: model.predict(x, data_samples_for(x), rescale=False),
                   'mmdet model.predict (masks pasted into the image)')
    n_det = int(out_ort[0].shape[1])
    counts = dict(onnxruntime=n_det, pytorch=int(out_pt[0].shape[1]),
                  mmdet=len(out_mmdet[0].pred_instances))
    same = len(out_ort) == len(out_pt) and all(a.shape == b.shape for a, b in zip(out_ort, out_pt))
    # in output order: exactness itself (ties, odd sizes, several models) is tests/test_tools/test_deploy.py's
    max_diff = max(float(np.abs(a.astype(np.float64) - b).max()) for a, b in
                   zip(out_ort, out_pt)) if same and n_det else None

    ref = results['PyTorch']
    lines = [f'{osp.basename(args.config)}, input 1 x 3 x {h} x {w}, detections: ONNX Runtime '
             f'{counts["onnxruntime"]}, PyTorch {counts["pytorch"]}, mmdet {counts["mmdet"]}; '
             f'{args.threads} intra-op thread(s), {os.cpu_count()} cores '
             f'({platform.processor() or platform.machine()}), load {load0:.1f} at start; '
             f'torch {torch.__version__}, onnxruntime {ort.__version__}',
             '',
             '| runtime | what runs | wall (ms) median [min-max] | CPU time (ms) median '
             '| CPU / PyTorch | load |',
             '|---|---|---|---|---|---|']
    for name, r in results.items():
        wl, cp = r['wall'], r['cpu']
        lines.append(f'| {name} | {r["what"]} | {wl["median"] * 1e3:.0f} '
                     f'[{wl["min"] * 1e3:.0f}-{wl["max"] * 1e3:.0f}] | {cp["median"] * 1e3:.0f} | '
                     f'{cp["median"] / ref["cpu"]["median"]:.2f} | '
                     f'{r["load_before"]:.1f}-{r["load_after"]:.1f} |')
    if max_diff is not None:
        lines.append(f'\nONNX Runtime vs PyTorch (mmdeploy) outputs, in output order: '
                     f'max |difference| {max_diff:.2e}')
    table = '\n'.join(lines)
    print('\n' + table)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(dict(config=args.config, deploy_cfg=args.deploy_cfg, size=[h, w],
                       threads=args.threads, detections=counts, max_abs_diff=max_diff,
                       results=results, table=table), f, indent=2)
    print(f'\n[bench] wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
