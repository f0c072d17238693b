"""Mixed precision: DS-Net and a whole DS-Net Mask R-CNN under ``torch.autocast`` (float16 and
bfloat16, on CPU): forward and backward finite, outputs within a stated tolerance of float32,
attention still on SDPA's fused kernel. And ``BF16OptimWrapper``, the CPU bf16 training switch:
a real mmengine runner trains, checkpoints and resumes with it.

Tolerances (max |low - fp32| / max |fp32| over each output map), set with margin over what these
tests measure (DS-Net-T eval: bf16 ~0.9e-2, fp16 ~1.4e-3; Mask R-CNN features: bf16 ~1.8e-2,
fp16 ~2.2e-3): bfloat16 keeps 8 bits of mantissa, float16 11.
"""
import copy
import os.path as osp

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dsnet_mm.engine.amp import BF16OptimWrapper, mmcv_cpu_ops_in_float32
from dsnet_mm.models import DSNet
from dsnet_mm.utils import read_checkpoint
from helpers import (build_model, det_batch, load_cfg, make_tiny_shapes, model_configs,
                     randomize_bn_, write_tiny_config)

TOL = {torch.bfloat16: 4e-2, torch.float16: 1e-2}
DTYPES = pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
FUSED = 'aten::_scaled_dot_product_flash_attention_for_cpu'
MATH = 'aten::_scaled_dot_product_attention_math'


def rel_err(low, ref):
    return ((low.float() - ref).abs().max() / ref.abs().max()).item()


def sdpa_kernels(fn):
    """Run ``fn`` under the profiler -> (fused CPU kernel calls, math fallback calls)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = [e.name for e in prof.events()]
    return names.count(FUSED), names.count(MATH)


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return randomize_bn_(DSNet('tiny', attn_drop_rate=0., drop_path_rate=0.))


@DTYPES
def test_dsnet_under_autocast(tiny, dtype):
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    model = tiny.eval()
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=dtype):
            low = model(x)
            fused, math = sdpa_kernels(lambda: model(x))
    assert fused == 27 and math == 0   # 3 attentions x 9 blocks, all on the fused kernel
    for a, b in zip(low, ref):
        assert a.dtype == dtype and torch.isfinite(a).all()
        assert rel_err(a, b) < TOL[dtype], (dtype, rel_err(a, b))

    # train mode, backward: finite gradients close to float32's (norm of the difference)
    grads = []
    for amp in (False, True):
        model.train().zero_grad()
        with torch.autocast('cpu', dtype=dtype, enabled=amp):
            out = model(x)
        sum((o.float() * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.isfinite(grads[1]).all()
    assert ((grads[1] - grads[0]).norm() / grads[0].norm()).item() < 5 * TOL[dtype]


@pytest.fixture(scope='module')
def mask_rcnn():
    cfg, scope = load_cfg('configs/embedded/mask_rcnn_dsnet_t_fpn_shapes.py')
    return build_model(cfg, scope).train()


@DTYPES
def test_mask_rcnn_under_autocast(mask_rcnn, dtype):
    """The whole detector's training step (mmcv's CPU nms / RoIAlign kernels take float32 only,
    fed by ``mmcv_cpu_ops_in_float32``; on a GPU they take half)."""
    model = mask_rcnn
    batch = det_batch(with_masks=True, sizes=((80, 96), (80, 96)))
    data = model.data_preprocessor(batch, training=True)

    def step(amp):
        torch.manual_seed(0)
        model.zero_grad()
        with torch.autocast('cpu', dtype=dtype, enabled=amp), mmcv_cpu_ops_in_float32():
            losses = model(**data, mode='loss')
            feats = model.extract_feat(data['inputs'])
        loss, log_vars = model.parse_losses(losses)
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        return log_vars, feats, grads

    ref_vars, ref_feats, ref_grads = step(False)
    low_vars, low_feats, low_grads = step(True)
    assert set(low_grads) == set(ref_grads)
    for n, g in low_grads.items():
        assert torch.isfinite(g).all(), n
    for k, v in low_vars.items():
        assert torch.isfinite(torch.as_tensor(v)), k
    for a, b in zip(low_feats, ref_feats):   # backbone + FPN
        assert a.dtype == dtype and rel_err(a, b) < TOL[dtype], (dtype, rel_err(a, b))
    # the RPN samples anchors by the ground truth: its losses compare directly
    for k in ('loss_rpn_cls', 'loss_rpn_bbox'):
        assert abs(low_vars[k] - ref_vars[k]) <= TOL[dtype] * abs(ref_vars[k]) + 1e-4, k
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        fused, math = sdpa_kernels(lambda: model.extract_feat(data['inputs']))
    assert fused == 27 and math == 0


# ------------------------------------------------------------------ the CPU bf16 switch


@pytest.mark.parametrize('path', model_configs())
def test_configs_accept_the_amp_switch(path):
    """mmdet's / mmseg's ``train.py --amp`` turns ``optim_wrapper.type='OptimWrapper'`` into
    mmengine's ``AmpOptimWrapper`` (float16, dynamic loss scale) and refuses any other type
    (mmpretrain's sets the type whatever it was; no type means ``OptimWrapper``)."""
    cfg, _ = load_cfg(path)
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper', cfg.optim_wrapper


def test_mmengine_amp_wrapper_is_left_alone():
    from mmengine.optim import AmpOptimWrapper
    from mmengine.registry import OPTIM_WRAPPERS
    assert OPTIM_WRAPPERS.get('AmpOptimWrapper') is AmpOptimWrapper
    assert OPTIM_WRAPPERS.get('BF16OptimWrapper') is BF16OptimWrapper
    assert not issubclass(BF16OptimWrapper, AmpOptimWrapper)


@pytest.mark.slow
def test_bf16_runner_trains_checkpoints_and_resumes(tmp_path):
    """mmengine's Runner with ``optim_wrapper.type='BF16OptimWrapper'`` on the embedded Mask
    R-CNN: the training forward runs in bfloat16, the checkpoint holds float32 weights and the
    optimizer state, and ``resume`` continues from it."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    data = make_tiny_shapes(tmp_path / 'shapes')
    cfg_path = write_tiny_config(tmp_path / 'cfg.py', data, max_epochs=1, extra='''
        optim_wrapper = dict(type='BF16OptimWrapper')
        val_cfg = None
        val_dataloader = None
        val_evaluator = None
    ''')

    def runner(work_dir, max_epochs, resume):
        cfg = Config.fromfile(cfg_path)
        cfg.work_dir = str(work_dir)
        cfg.train_cfg.max_epochs = max_epochs
        cfg.resume = resume
        return Runner.from_cfg(cfg)

    first = runner(tmp_path / 'work', 1, False)
    dtypes = []
    first.model.backbone.register_forward_hook(lambda m, i, o: dtypes.append(o[0].dtype))
    first.train()
    assert isinstance(first.optim_wrapper, BF16OptimWrapper)
    assert dtypes and set(dtypes) == {torch.bfloat16}
    ckpt = read_checkpoint(osp.join(tmp_path, 'work', 'epoch_1.pth'))
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 2
    assert all(v.dtype != torch.bfloat16 for v in ckpt['state_dict'].values())
    assert ckpt['optimizer']['state'], 'no optimizer state saved'
    saved_weights = copy.deepcopy(ckpt['state_dict'])

    second = runner(tmp_path / 'work', 2, True)
    resumed = []
    second.register_hook(_record_start(resumed), 'LOWEST')
    second.train()
    assert resumed == [(1, 2)]                      # started at epoch 1, iteration 2
    ckpt2 = read_checkpoint(osp.join(tmp_path, 'work', 'epoch_2.pth'))
    assert ckpt2['meta']['epoch'] == 2 and ckpt2['meta']['iter'] == 4
    changed = [k for k, v in ckpt2['state_dict'].items()
               if v.is_floating_point() and not torch.equal(v, saved_weights[k])]
    assert changed, 'the resumed run did not train'


def _record_start(out):
    """A hook that records (epoch, iter) when training starts (after any resume)."""
    from mmengine.hooks import Hook

    class RecordStart(Hook):

        def before_train(self, runner):
            out.append((runner.epoch, runner.iter))

    return RecordStart()
