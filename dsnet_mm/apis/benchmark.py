"""COCO evaluation pieces of tools/benchmark_coco.py (PyTorch) and tools/deploy/eval_onnx.py
(ONNX Runtime), so that both give the same checks, columns and table; the FLOP count of
tools/benchmark_coco.py and tools/analysis_tools/get_flops.py, and the weight-free model build
of get_flops.py (and of the tests)."""
import importlib
import os
import os.path as osp
import time

BOX_KEYS = ('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l')
HOW_TO_GET_DATA = (
    'COCO 2017: download val2017.zip and annotations_trainval2017.zip from '
    'https://cocodataset.org/#download and unpack them so that data/coco/val2017/ and '
    'data/coco/annotations/instances_val2017.json exist (or point the config at your copy with '
    '--cfg-options test_dataloader.dataset.data_root=... test_evaluator.ann_file=...). '
    'The embedded shapes set (configs/embedded/): python tools/dataset_converters/make_shapes_coco.py')


class BenchmarkError(Exception):
    """A problem the user can fix; the tools print it without a traceback."""


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
    """Raise :class:`BenchmarkError` naming every missing part of the config's test data and how
    to get it, before a runner fails on it deep inside a dataset."""
    missing = [k for k in ('test_dataloader', 'test_evaluator') if not cfg.get(k)]
    if missing:
        raise BenchmarkError(
            f'{cfg_path} has no {" and no ".join(missing)}: the benchmark evaluates a config\'s '
            'test split. Use a detection config that defines both (configs/*.py, '
            'configs/embedded/*.py), or add them to this one (e.g. test_dataloader = '
            'val_dataloader; test_evaluator = val_evaluator).')
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


def build_without_weights(cfg, init_weights=False):
    """The model of ``cfg`` (an mmengine ``Config``, changed in place) built in its
    ``default_scope`` (mmdet when it has none) with no pre-trained weights read or downloaded:
    the backbone's ``init_cfg``, the model's ``pretrained`` and a ``TIMMBackbone``'s
    ``pretrained`` (timm loads at build time) are cleared; the config's ``data_preprocessor``
    reaches the model as mmengine's Runner passes it. ``init_weights``: also run the model's
    random initialisation. -> ``(model, scope)``."""
    from mmengine.registry import DefaultScope
    scope = cfg.get('default_scope', 'mmdet')
    cfg.model.backbone.init_cfg = None
    if cfg.model.backbone.get('type') == 'mmpretrain.TIMMBackbone':
        cfg.model.backbone.pretrained = False
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
        if init_weights:
            model.init_weights()
    return model, scope


def count_flops(model, inputs, forward=None):
    """FLOPs (one multiply-add = one FLOP) of ``forward(inputs)`` (default ``model(inputs)``), by
    ``mmengine.analysis.get_model_complexity_info``. The attention matmuls are counted: under the
    counter's jit tracing DS-Net runs them as explicit softmax(QK^T)V, not as an SDPA op it would
    skip."""
    import torch
    from mmengine.analysis import get_model_complexity_info
    if forward is not None:
        model.forward = forward   # the counter calls model(...); it must run this path
    try:
        with torch.no_grad():
            return get_model_complexity_info(model, inputs=(inputs, ), show_table=False,
                                             show_arch=False)['flops']
    finally:
        if forward is not None:
            del model.forward   # back to the class's forward


def measure_speed(model, dataloader, n_images, n_warmup=3):
    """Images/s of ``model.test_step`` over ``dataloader`` (batch 1) after ``n_warmup`` images:
    data loading excluded, CUDA synchronised around each step when CUDA is in use (mmdet's
    ``InferenceBenchmark`` measure). None when the set has no image left to time."""
    import torch
    max_iter = min(n_warmup + n_images, len(dataloader))
    if max_iter <= n_warmup:
        return None

    def sync():
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    timed = 0.0
    with torch.no_grad():
        for i, data in enumerate(dataloader):
            if i == max_iter:
                break
            sync()
            start = time.perf_counter()
            model.test_step(data)
            sync()
            if i >= n_warmup:
                timed += time.perf_counter() - start
    return (max_iter - n_warmup) / timed


def coco_ap_columns(metrics):
    """``{'bbox_mAP': ..., 'segm_mAP_50': ...}`` from CocoMetric's ``coco/...`` results (None when
    a task was not evaluated): the table's AP columns."""
    return {f'{task}_{k}': None if metrics.get(f'coco/{task}_{k}') is None
            else float(metrics[f'coco/{task}_{k}'])
            for task in ('bbox', 'segm') for k in BOX_KEYS}


def _fmt(v, nd=1, scale=1.0):
    return '-' if v is None or v < 0 else f'{v * scale:.{nd}f}'   # COCO: -1 = no such objects


def markdown(rows):
    """The Markdown table of evaluated rows (config, AP columns, params, FLOPs, img/s)."""
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
