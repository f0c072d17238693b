#!/usr/bin/env python
"""Speed and peak memory of DS-Net against the backbones users would pick instead.

One command, one run, the same machine: DS-Net-T/S/B against mmdet's ResNet-50, Swin-T and
PVTv2-B2 (optionally PVT-S), all built from mmdet's MODELS registry with the backbone settings of
mmdet's own config files; then the whole Mask R-CNN forward (backbone + FPN + RPN + RoI heads,
``mode='tensor'``) of DS-Net-S vs R-50 vs Swin-T; optionally DS-Net-S with the fused attention
(``F.scaled_dot_product_attention``) vs the explicit softmax(QK^T/sqrt d)V path.

Every (model, input, mode) runs in a fresh child process (``subprocess``), so memory figures do not
leak from one model into the next: on CPU the peak is the child's VmHWM (reset through
/proc/self/clear_refs after the model is built) minus its resident size just before the first
forward, i.e. activations + workspace (+ gradients for fwd+bwd), not the weights; on CUDA it is
``torch.cuda.max_memory_allocated`` minus the allocation before the first forward.

Times: median and spread (min-max; IQR in the JSON) of N timed iterations after W warm-up ones.

Examples::

    # the full comparison (the defaults suit a 2-core CPU: ~15-25 min)
    python tools/analysis_tools/benchmark_backbones.py --out work_dirs/benchmark.md
    # a few minutes: DS-Net-S, R-50, Swin-T, fewer iterations, no fwd+bwd
    python tools/analysis_tools/benchmark_backbones.py --quick
    # fused vs explicit attention of DS-Net-S at 800 x 1333 only
    python tools/analysis_tools/benchmark_backbones.py --models dsnet_s --sizes none \\
        --no-detector --attention-compare
    # GPU, bf16 autocast
    python tools/analysis_tools/benchmark_backbones.py --device cuda --amp
"""
import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))

BACKBONES = {
    # key: (label, source). source: a dict (the config) or 'mmdet::<config file>' whose
    # model.backbone is taken as is (pre-trained init removed).
    'dsnet_t': ('DS-Net-T', dict(type='DSNet', arch='tiny', init_cfg=None)),
    'dsnet_s': ('DS-Net-S', dict(type='DSNet', arch='small', init_cfg=None)),
    'dsnet_b': ('DS-Net-B', dict(type='DSNet', arch='base', init_cfg=None)),
    'r50': ('ResNet-50', 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
    'swin_t': ('Swin-T', 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'),
    'pvtv2_b2': ('PVTv2-B2', 'mmdet::pvt/retinanet_pvtv2-b2_fpn_1x_coco.py'),
    'pvt_s': ('PVT-S', 'mmdet::pvt/retinanet_pvt-s_fpn_1x_coco.py'),
}
DETECTORS = {
    'dsnet_s': ('Mask R-CNN DS-Net-S', 'configs/mask_rcnn_dsnet_s_fpn_1x_coco.py'),
    'r50': ('Mask R-CNN R-50', 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'),
    'swin_t': ('Mask R-CNN Swin-T', 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'),
}
REF = 'swin_t'   # ratios are to Swin-T


# ------------------------------------------------------------------------------------------
# child side: build one model, time it, measure its peak memory, print one JSON line
# ------------------------------------------------------------------------------------------

def _mmdet_config(name):
    import mmdet
    from mmengine.config import Config
    if name.startswith('mmdet::'):
        path = os.path.join(os.path.dirname(mmdet.__file__), '.mim', 'configs', name[7:])
        if not os.path.exists(path):   # mmdet names the folder mask_rcnn; keep both spellings
            path = path.replace('mask_rcnn/', 'mask-rcnn/')
    else:
        path = os.path.join(ROOT, name)
    return Config.fromfile(path)


def _strip_pretrained(cfg):
    cfg = dict(cfg)
    cfg.pop('_delete_', None)
    cfg['init_cfg'] = None
    if cfg.get('type') == 'SwinTransformer':
        cfg['convert_weights'] = False
    if cfg.get('type') == 'ResNet':
        cfg.pop('pretrained', None)
    return cfg


def _dsnet_s_detector_cfg():
    """The project's DS-Net-S Mask R-CNN config if it exists and loads, else mmdet's R-50 one with
    the backbone swapped (the same model)."""
    note = 'configs/mask_rcnn_dsnet_s_fpn_1x_coco.py'
    try:
        cfg = _mmdet_config(DETECTORS['dsnet_s'][1])
    except Exception as e:   # noqa: BLE001 - any failure: fall back to the equivalent build
        cfg = _mmdet_config(DETECTORS['r50'][1])
        cfg.model.backbone = dict(type='DSNet', arch='small', out_indices=(0, 1, 2, 3))
        cfg.model.neck.in_channels = [64, 128, 320, 512]
        note = f'mmdet R-50 config with a DSNet-S backbone ({type(e).__name__} loading {note})'
    bb = dict(cfg.model.backbone)
    bb.update(init_cfg=None, norm_eval=False)
    bb.pop('_delete_', None)
    cfg.model.backbone = bb
    return cfg, note


def build_model(spec):
    import dsnet_mm  # noqa: F401  (registers DSNet into mmdet's MODELS)
    from dsnet_mm.models import set_fused_attn
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    note = ''
    if spec['kind'] == 'backbone':
        src = BACKBONES[spec['model']][1]
        cfg = dict(src) if isinstance(src, dict) else _strip_pretrained(_mmdet_config(src).model.backbone)
        model = MODELS.build(cfg)
        note = cfg['type']
    else:
        if spec['model'] == 'dsnet_s':
            cfg, note = _dsnet_s_detector_cfg()
        else:
            cfg = _mmdet_config(DETECTORS[spec['model']][1])
            cfg.model.backbone = _strip_pretrained(cfg.model.backbone)
            note = DETECTORS[spec['model']][1]
        model = MODELS.build(cfg.model)
    if spec.get('fused') is not None:
        set_fused_attn(spec['fused'], model)
    return model, note


def _status_kb(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return None


def _reset_hwm():
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')   # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def make_forward(model, spec, device):
    """A no-argument call of the model on random input of the spec's size (detectors: the whole
    Mask R-CNN in ``mode='tensor'``, the input padded to 32 as mmdet's data preprocessor does)."""
    import torch
    B, H, W = spec['batch'], spec['h'], spec['w']
    if spec['kind'] != 'detector':
        x = torch.randn(B, 3, H, W, device=device)
        return lambda: model(x)
    from mmdet.structures import DetDataSample
    ph, pw = -(-H // 32) * 32, -(-W // 32) * 32
    x = torch.randn(B, 3, ph, pw, device=device)
    samples = [DetDataSample(metainfo=dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(ph, pw),
                                           batch_input_shape=(ph, pw), scale_factor=(1., 1.)))
               for _ in range(B)]
    return lambda: model(x, samples, mode='tensor')


def _tensors(outputs):
    import torch
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, (list, tuple)):
        return [t for o in outputs for t in _tensors(o)]
    return []


def make_step(model, forward, train, amp):
    """One timed step: forward (eval: no grad), or forward + backward of the outputs' mean."""
    import contextlib

    import torch
    autocast = (lambda: torch.autocast('cuda', dtype=torch.bfloat16)) if amp \
        else contextlib.nullcontext

    def step():
        if not train:
            with torch.no_grad(), autocast():
                forward()
            return
        model.zero_grad(set_to_none=True)
        with autocast():
            outputs = forward()
        sum(o.float().mean() for o in _tensors(outputs)).backward()
    return step


def memory_before(cuda):
    """(memory in use before the first step, how the peak is measured)."""
    import torch
    gc.collect()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated(), 'cuda.max_memory_allocated - allocated before'
    how = 'VmHWM - VmRSS before' + ('' if _reset_hwm() else ' (HWM not resettable)')
    return _status_kb('VmRSS') * 1024, how


def memory_peak(cuda):
    import torch
    return torch.cuda.max_memory_allocated() if cuda else _status_kb('VmHWM') * 1024


def time_steps(step, warmup, iters, cuda):
    """Wall and process CPU times of ``iters`` steps after ``warmup`` untimed ones."""
    import torch
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(warmup):
        step()
    times, cpu_times = [], []
    for _ in range(iters):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return times, cpu_times


def run_child(spec):
    import torch
    torch.set_num_threads(spec['threads'])
    device = torch.device(spec['device'])
    cuda = device.type == 'cuda'
    torch.manual_seed(0)
    model, note = build_model(spec)
    model = model.to(device)
    train = spec['mode'] == 'train'
    model.train(train)
    step = make_step(model, make_forward(model, spec, device), train, cuda and spec['amp'])
    base, mem_how = memory_before(cuda)
    times, cpu_times = time_steps(step, spec['warmup'], spec['iters'], cuda)
    return dict(spec=spec, times=times, cpu_times=cpu_times, peak_bytes=memory_peak(cuda) - base,
                params=sum(p.numel() for p in model.parameters()), note=note, mem_how=mem_how)


# ------------------------------------------------------------------------------------------
# parent side: the job list, one child per job, the tables
# ------------------------------------------------------------------------------------------

def parse_sizes(text):
    """'224x224:1,224x224:16,800x1333:1' -> [(224, 224, 1), ...]; 'none' -> []."""
    if text.strip().lower() in ('', 'none'):
        return []
    out = []
    for item in text.split(','):
        hw, _, b = item.partition(':')
        h, w = hw.lower().split('x')
        out.append((int(h), int(w), int(b or 1)))
    return out


def default_iters(h, w, b, args, mode):
    """(warm-up, timed iterations): sensible on 2 CPU cores unless --warmup/--iters are given."""
    big = h * w * b >= 500_000
    if args.device.startswith('cuda'):
        w_, n = (5, 20) if not big else (3, 10)
    elif args.quick:
        w_, n = (1, 3) if h * w * b <= 224 * 224 else (1, 2)
    elif mode == 'train':
        w_, n = (1, 3) if not big else (1, 2)
    else:
        w_, n = (2, 10) if h * w * b <= 224 * 224 else ((1, 5) if not big else (1, 3))
    return (args.warmup if args.warmup is not None else w_,
            args.iters if args.iters is not None else n)


def run_job(spec):
    """Run one measurement in a fresh child process; its result, or the error it died with."""
    cmd = [sys.executable, os.path.abspath(__file__), '--child', json.dumps(spec)]
    env = dict(os.environ, OMP_NUM_THREADS=str(spec['threads']), PYTHONWARNINGS='ignore')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    load, t0 = os.getloadavg()[0], time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    res = next((json.loads(line[9:]) for line in proc.stdout.splitlines()
                if line.startswith('@@RESULT ')), None)
    if res is None:
        tail = (proc.stderr or proc.stdout)[-2000:]
        print(f'  FAILED {spec["kind"]} {spec["model"]}: {tail}', file=sys.stderr)
        res = dict(spec=spec, error=tail.strip().splitlines()[-1] if tail.strip() else 'failed')
    res.update(load_before=load, load_after=os.getloadavg()[0], wall=time.time() - t0)
    if 'times' in res:
        print_progress(res)
    return res


def print_progress(res):
    spec = res['spec']
    fused = '' if spec.get('fused') is None else f' fused={spec["fused"]}'
    print(f'  {spec["kind"]:8s} {spec["model"]:9s} {spec["mode"]:5s} '
          f'{spec["batch"]}x{spec["h"]}x{spec["w"]}{fused}: '
          f'median {statistics.median(res["times"]) * 1e3:.1f} ms, '
          f'peak {res["peak_bytes"] / 2**20:.0f} MiB '
          f'(load {res["load_before"]:.1f}->{res["load_after"]:.1f}, {res["wall"]:.0f} s)',
          flush=True)


def stats(res, key='times'):
    ts = sorted(res[key])
    q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
    return dict(median=statistics.median(ts), min=ts[0], max=ts[-1], q1=q[0], q3=q[2])


def fmt_ms(s):
    return f'{s * 1e3:.0f}' if s >= 0.1 else f'{s * 1e3:.1f}'


def fmt_ratio(a, b):
    return f'{a / b:.2f}' if a is not None and b else 'n/a'


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            names = [ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')]
        if names:
            return f'{names[0]} ({len(names)} logical CPUs visible)'
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def machine_header(args, load_start, load_end, cmdline):
    import mmdet
    import torch
    dev = 'CPU'
    if args.device.startswith('cuda'):
        dev = torch.cuda.get_device_name(0) + (' (bf16 autocast)' if args.amp else ' (fp32)')
    return '\n'.join([
        f'- command: `{cmdline}`',
        f'- date: {datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}',
        f'- machine: {cpu_name()}; device: {dev}',
        f'- torch {torch.__version__}, mmdet {mmdet.__version__}, Python {platform.python_version()}; '
        f'{args.threads} intra-op threads per child process',
        f'- 1-min load average: {load_start:.1f} at start, {load_end:.1f} at end '
        '(other processes on the machine inflate and scatter the times)',
        '- time: median of N timed runs after W warm-up runs, [min-max]; memory: peak over the '
        'runs minus the resident size before them (activations + workspace, + gradients for fwd+bwd; '
        'weights excluded); one fresh process per row',
        '- targets for the ratios to Swin-T: docs/performance.md',
    ])


def build_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', default='dsnet_t,dsnet_s,dsnet_b,r50,swin_t,pvtv2_b2',
                   help=f'backbones, comma-separated, from {sorted(BACKBONES)}')
    p.add_argument('--sizes', default='224x224:1,224x224:16,800x1333:1',
                   help="forward sizes 'HxW:batch,...' ('none' to skip the backbone forward table)")
    p.add_argument('--train-sizes', default='224x224:16',
                   help="forward+backward (train mode) sizes, same format; 'none' to skip")
    p.add_argument('--detector-size', default='800x1333:1')
    p.add_argument('--detectors', default='dsnet_s,r50,swin_t', help=f'from {sorted(DETECTORS)}')
    p.add_argument('--no-detector', action='store_true', help='skip the Mask R-CNN table')
    p.add_argument('--attention-compare', action='store_true',
                   help='also time DS-Net-S with fused vs explicit attention at --attention-size')
    p.add_argument('--attention-size', default='800x1333:1')
    p.add_argument('--warmup', type=int, default=None, help='warm-up runs (default: by size)')
    p.add_argument('--iters', type=int, default=None, help='timed runs (default: by size)')
    p.add_argument('--threads', type=int, default=None, help='intra-op threads (default: all cores)')
    p.add_argument('--device', default=None, help="'cpu' or 'cuda' (default: cuda if available)")
    p.add_argument('--amp', action='store_true', help='bf16 autocast (CUDA only)')
    p.add_argument('--quick', action='store_true',
                   help='a few minutes: DS-Net-S/R-50/Swin-T, 2-3 timed runs, no fwd+bwd')
    p.add_argument('--out', default=None, help='also write the Markdown here (and the raw JSON next to it)')
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    return p


def resolve_defaults(p, args):
    """Fill in the device, threads and --quick's smaller job list; check the model names."""
    import torch
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.threads is None:
        args.threads = torch.get_num_threads()
    if args.quick and args.models == p.get_default('models'):
        args.models = 'dsnet_s,r50,swin_t'
    if args.quick and args.train_sizes == p.get_default('train_sizes'):
        args.train_sizes = 'none'
    args.models = [m for m in args.models.split(',') if m]
    for m in args.models:
        if m not in BACKBONES:
            p.error(f'unknown model {m!r}; choose from {sorted(BACKBONES)}')


def run_all(args):
    """Every job of the comparison, one child process each."""
    def job(kind, model, size, mode='fwd', fused=None):
        h, w, b = size
        wu, n = default_iters(h, w, b, args, mode)
        return run_job(dict(threads=args.threads, device=args.device, amp=args.amp, kind=kind,
                            model=model, h=h, w=w, batch=b, mode=mode, warmup=wu, iters=n,
                            fused=fused))

    results = dict(backbone=[], detector=[], attention=[])
    for mode, sizes in (('fwd', args.sizes), ('train', args.train_sizes)):
        results['backbone'] += [job('backbone', m, size, mode)
                                for size in parse_sizes(sizes) for m in args.models]
    if not args.no_detector:
        size, = parse_sizes(args.detector_size)
        results['detector'] = [job('detector', m, size) for m in args.detectors.split(',')]
    if args.attention_compare:
        size, = parse_sizes(args.attention_size)
        results['attention'] = [job('backbone', 'dsnet_s', size, fused=f) for f in (True, False)]
    return results


def write_report(text, results, out, cmdline):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(text + '\n')
    with open(os.path.splitext(out)[0] + '.json', 'w') as f:
        json.dump(dict(results=results, cmd=cmdline), f, indent=1)
    print(f'\nwritten to {out}')


def main():
    p = build_parser()
    args = p.parse_args()
    if args.child:
        print('@@RESULT ' + json.dumps(run_child(json.loads(args.child))), flush=True)
        return
    resolve_defaults(p, args)
    cmdline = 'python ' + ' '.join([os.path.relpath(__file__, ROOT)] + sys.argv[1:])
    load_start = os.getloadavg()[0]
    print(f'benchmark on {args.device}, {args.threads} threads; load {load_start:.1f}', flush=True)
    results = run_all(args)
    md = ['# DS-Net speed and memory', '',
          machine_header(args, load_start, os.getloadavg()[0], cmdline), '']
    md += backbone_tables(results['backbone'])
    md += detector_table(results['detector'])
    md += attention_table(results['attention'])
    text = '\n'.join(md)
    print('\n' + text)
    if args.out:
        write_report(text, results, args.out, cmdline)


def _find(rows, model, h, w, b, mode):
    for r in rows:
        s = r['spec']
        if (s['model'], s['h'], s['w'], s['batch'], s['mode']) == (model, h, w, b, mode) and 'times' in r:
            return r
    return None


def measured_cells(r, ref):
    """The cells every measured row has: W/N, time and its ratio to the reference, CPU time and its
    ratio, peak memory and its ratio, the load. CPU time is the process time of all threads: with
    one thread it is the time on an idle core, hardly affected by other processes."""
    st, cpu = stats(r), stats(r, 'cpu_times')['median']
    s = r['spec']
    return [f'{s["warmup"]}/{s["iters"]}',
            f'{fmt_ms(st["median"])} [{fmt_ms(st["min"])}-{fmt_ms(st["max"])}]',
            fmt_ratio(st['median'], stats(ref)['median'] if ref else None),
            fmt_ms(cpu), fmt_ratio(cpu, stats(ref, 'cpu_times')['median'] if ref else None),
            f'{r["peak_bytes"] / 2**20:.0f}',
            fmt_ratio(r['peak_bytes'], ref['peak_bytes'] if ref else None),
            f'{r["load_before"]:.1f}-{r["load_after"]:.1f}']


MEASURED_HEAD = ('W/N | time (ms) median [min-max] | time / Swin-T | CPU time (ms) | CPU / Swin-T '
                 '| peak mem (MiB) | mem / Swin-T | load')


def table_row(cells):
    return '| ' + ' | '.join(cells) + ' |'


def backbone_row(r, rows):
    s = r['spec']
    label, size = BACKBONES[s['model']][0], f'{s["batch"]} x {s["h"]} x {s["w"]}'
    if 'times' not in r:
        return table_row([label, '', size, '', f'failed: {r.get("error", "")[:80]}'] + [''] * 6)
    ref = _find(rows, REF, s['h'], s['w'], s['batch'], s['mode'])
    return table_row([label, f'{r["params"] / 1e6:.1f}', size] + measured_cells(r, ref))


def backbone_tables(rows):
    out = []
    for mode, title in (('fwd', 'Backbone forward (eval, no grad)'),
                        ('train', 'Backbone forward + backward (train mode)')):
        sel = [r for r in rows if r['spec']['mode'] == mode]
        if sel:
            out += [f'## {title}', '', f'| backbone | params (M) | input (B x H x W) | {MEASURED_HEAD} |',
                    '|---' * 11 + '|'] + [backbone_row(r, rows) for r in sel] + ['']
    return out


def detector_table(rows):
    if not rows:
        return []
    s0 = rows[0]['spec']
    ref = next((r for r in rows if r['spec']['model'] == REF and 'times' in r), None)
    out = [f'## Mask R-CNN forward (eval, `mode=\'tensor\'`: backbone, FPN, RPN proposals, bbox head on '
           f'1000 RoIs, mask head on 100), {s0["batch"]} x {s0["h"]} x {s0["w"]} padded to 32', '',
           f'| detector | params (M) | {MEASURED_HEAD} | built from |', '|---' * 11 + '|']
    for r in rows:
        label = DETECTORS[r['spec']['model']][0]
        if 'times' not in r:
            out.append(table_row([label, '', '', f'failed: {r.get("error", "")[:80]}'] + [''] * 7))
        else:
            out.append(table_row([label, f'{r["params"] / 1e6:.1f}'] + measured_cells(r, ref)
                                 + [r['note']]))
    return out + ['']


def attention_table(rows):
    ok = [r for r in rows if 'times' in r]
    if len(ok) < 2:
        return []
    s0 = ok[0]['spec']
    fused = next(r for r in ok if r['spec']['fused'])
    expl = next(r for r in ok if not r['spec']['fused'])
    out = [f'## DS-Net-S attention paths, forward {s0["batch"]} x {s0["h"]} x {s0["w"]}', '',
           '| attention | time (ms) median [min-max] | CPU time (ms) | peak mem (MiB) | load |',
           '|---|---|---|---|---|']
    for r, name in ((fused, 'fused (`F.scaled_dot_product_attention`)'),
                    (expl, 'explicit softmax(QK^T/sqrt d)V')):
        st = stats(r)
        out.append(f'| {name} | {fmt_ms(st["median"])} [{fmt_ms(st["min"])}-{fmt_ms(st["max"])}] | '
                   f'{fmt_ms(stats(r, "cpu_times")["median"])} | {r["peak_bytes"] / 2**20:.0f} | {r["load_before"]:.1f}-{r["load_after"]:.1f} |')
    tf, te = stats(fused)['median'], stats(expl)['median']
    cf, ce = stats(fused, 'cpu_times')['median'], stats(expl, 'cpu_times')['median']
    out += ['', f'Fused saves {100 * (1 - tf / te):.0f}% of the wall time ({te / tf:.2f}x faster; '
            f'CPU time {ce / cf:.2f}x) and '
            f'{(expl["peak_bytes"] - fused["peak_bytes"]) / 2**20:.0f} MiB of peak memory '
            f'({100 * (1 - fused["peak_bytes"] / expl["peak_bytes"]):.0f}%).', '']
    return out


if __name__ == '__main__':
    main()
