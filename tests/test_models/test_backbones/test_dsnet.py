"""DSNet: exactness to the reference, the backbone contract, registries and argument errors."""
import math

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from dsnet_mm.models import DSNet
from helpers import convert_dsnet_reference, tool_module
from reference_dsnet import ReferenceDSNet, randomize_

# Parameters with the 1000-class head (docs/model_zoo.md), and state-dict key totals of the
# public reference checkpoints (tests/reference_dsnet.py).
PARAMS_M = {'tiny': 10.53, 'small': 23.01, 'base': 49.34}
KEYS = {'tiny': 429, 'small': 843, 'base': 1763}


def build_classifier(arch):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='DSNet', arch=arch, out_indices=(3, )),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=1000, in_channels=512)))


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_classifier_has_the_reference_parameter_set(arch):
    model = build_classifier(arch)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / 1e6 - PARAMS_M[arch]) <= 0.01, n
    assert len(model.state_dict()) == KEYS[arch]
    ref = ReferenceDSNet(arch)
    assert sum(p.numel() for p in ref.parameters()) == n
    # same tensors, name for name, once the reference names are converted
    backbone, head = convert_dsnet_reference(ref.state_dict())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {f'backbone.{k}': tuple(v.shape) for k, v in backbone.items()}
    theirs.update({f'head.fc.{k}': tuple(v.shape) for k, v in head.items()})
    assert ours == theirs


def test_block_parameter_formula():
    # 12.75 C^2 + 35.5 C per DS-Block (docs/model_zoo.md)
    model = DSNet('tiny')
    for stage, c in zip(model.stages, model.channels):
        n = sum(p.numel() for p in stage[0].parameters())
        assert n == 12.75 * c * c + 35.5 * c


@pytest.mark.parametrize('arch', ['tiny', 'small'])
@pytest.mark.parametrize('fused', [True, False])
def test_equals_reference_computation(arch, fused):
    ref = randomize_(ReferenceDSNet(arch)).eval()
    model = DSNet(arch, fused_attn=fused).eval()
    model.load_state_dict(convert_dsnet_reference(ref.state_dict())[0])
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref.forward_features(x)
        got = model(x)
    for e, g in zip(expected, got):
        assert e.abs().max() > 1   # not a trivially small signal
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-4)


def test_reference_names_load_directly_through_the_state_dict_hook():
    ref = randomize_(ReferenceDSNet('tiny'))
    sd = {k: v for k, v in ref.state_dict().items() if not k.startswith('head.')}
    model = DSNet('tiny')
    model.load_state_dict(sd, strict=True)
    torch.testing.assert_close(model.stages[2][3].mixer.inter.global_proj.weight,
                               ref.blocks3[3].fuse_channel_sa.weight)


@pytest.mark.parametrize('size', [(224, 224), (32, 32), (33, 47), (64, 200), (97, 61), (256, 320)])
def test_shapes_and_strides_for_any_size(size):
    model = DSNet('tiny').eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert len(outs) == 4
    for out, c, s in zip(outs, model.channels, model.strides):
        assert out.shape == (1, c, math.ceil(size[0] / s), math.ceil(size[1] / s))
        assert torch.isfinite(out).all()


def test_global_grid_never_collapses():
    # 32 x 32: stage 4 is 1 x 1 with global ratio 2, stage 1 is 8 x 8 with ratio 8
    from dsnet_mm.models.backbones.dsnet import global_grid
    assert global_grid((1, 1), 2) == (1, 1)
    assert global_grid((8, 9), 8) == (1, 1)
    assert global_grid((200, 334), 8) == (25, 41)   # 800 x 1333: the reference's floor


def test_out_indices_and_final_norm():
    x = torch.randn(1, 3, 64, 64)
    full = DSNet('tiny', out_indices=(0, 1, 2, 3)).eval()
    last = DSNet('tiny', out_indices=-1).eval()
    last.load_state_dict(full.state_dict())
    with torch.no_grad():
        a, b = full(x), last(x)
    assert len(b) == 1
    torch.testing.assert_close(a[3], b[0])
    torch.testing.assert_close(b[0], full.norm(full.stages[3](full.patch_embeds[3](
        full.stages[2](full.patch_embeds[2](full.stages[1](full.patch_embeds[1](
            full.stages[0](full.patch_embeds[0](x))))))))))
    no_norm = DSNet('tiny', out_indices=(3, ), final_norm=False).eval()
    no_norm.load_state_dict(full.state_dict())
    with torch.no_grad():
        full.norm.running_mean.fill_(3.)
        assert not torch.allclose(no_norm(x)[0], full(x)[3])


def test_global_strides_are_configurable():
    x = torch.randn(1, 3, 64, 64)
    a = DSNet('tiny').eval()
    b = DSNet('tiny', global_strides=(32, 32, 32, 32)).eval()
    b.load_state_dict(a.state_dict())
    assert b.stages[3][0].mixer.intra.global_stride == 32
    with torch.no_grad():
        ya, yb = a(x), b(x)
    torch.testing.assert_close(ya[2], yb[2])            # stages 1-3 unchanged
    assert not torch.allclose(ya[3], yb[3])             # stage 4's global grid differs


@pytest.mark.parametrize('frozen', [0, 1, 2, 4])
def test_frozen_stages(frozen):
    model = DSNet('tiny', frozen_stages=frozen, attn_drop_rate=0.)
    model.train()
    frozen_mods = [model.patch_embeds[0]] + [m for i in range(1, frozen + 1)
                                            for m in (model.stages[i - 1], model.patch_embeds[i]
                                                      if i < 4 else model.norm)]
    for m in frozen_mods:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    outs = model(torch.randn(2, 3, 64, 64))
    if frozen == 4:   # everything frozen: nothing to train
        assert not any(o.requires_grad for o in outs)
        assert not any(p.requires_grad for p in model.parameters())
        return
    sum(o.mean() for o in outs).backward()
    frozen_params = {id(p) for m in frozen_mods for p in m.parameters()}
    for name, p in model.named_parameters():
        if id(p) in frozen_params:
            assert p.grad is None, name
        else:
            assert p.grad is not None, name
    # BN statistics of frozen stages did not move in a training forward
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm) and any(m is x for f in frozen_mods for x in f.modules()):
            torch.testing.assert_close(m.running_mean, before[f'{name}.running_mean'])
    # the runner calls train() every epoch: freezing must survive it
    model.train()
    assert not frozen_mods[-1].training
    assert model.stages[3].training == (frozen < 4)


def test_norm_eval():
    model = DSNet('tiny', norm_eval=True)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    assert model.stages[0][0].mixer.intra.global_norm.training   # LayerNorms are not BN
    stats = bns[0].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    torch.testing.assert_close(bns[0].running_mean, stats)
    model.eval().train()
    assert all(not m.training for m in bns)


def test_with_cp_same_output_and_gradients():
    torch.manual_seed(1)
    plain = DSNet('tiny', attn_drop_rate=0., drop_path_rate=0.)
    ckpt = DSNet('tiny', attn_drop_rate=0., drop_path_rate=0., with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 96)
    grads = []
    for model in (plain, ckpt):
        model.train()
        outs = model(x)
        sum((o**2).mean() for o in outs).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        grads[-1]['_out'] = torch.cat([o.flatten() for o in outs]).detach()
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6)


def test_drop_path_schedules():
    rates = lambda m: [getattr(b.drop_path, 'drop_prob', 0.) for s in m.stages for b in s]  # noqa
    linear = rates(DSNet('small', drop_path_rate=0.1))
    assert linear[0] == 0 and abs(linear[-1] - 0.1) < 1e-7
    assert all(b >= a for a, b in zip(linear, linear[1:]))
    ref = rates(DSNet('small', drop_path_rate=0.1, drop_path_schedule='per_stage'))
    # the reference restarts at 0 in every stage; its deepest block gets 0.1 * 7 / 17
    assert ref[:3] == linear[:3] and ref[3] == 0 and ref[7] == 0 and ref[15] == 0
    assert abs(max(ref) - 0.1 * 7 / 17) < 1e-7


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_registry_build_in_each_scope(scope):
    import importlib
    from mmengine.registry import init_default_scope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    init_default_scope(scope)
    model = registry.build(dict(type='DSNet', arch='t', out_indices=(1, 3)))
    assert isinstance(model, DSNet)
    assert registry.get('DSNet') is DSNet
    with torch.no_grad():
        outs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]


def test_custom_arch_dict():
    arch = dict(channels=[32, 64, 128, 256], depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 4])
    model = DSNet(arch).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == arch['channels']


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), "unknown DSNet arch 'huge'"),
    (dict(arch=dict(channels=[64, 128, 320, 512], depths=[2, 2, 4, 1])), "missing \\['num_heads'\\]"),
    (dict(arch=dict(channels=[64, 128, 320], depths=[2, 2, 4], num_heads=[1, 2, 5])), 'must have 4 values'),
    (dict(arch=dict(channels=[64, 128, 320, 512], depths=[1, 1, 1, 1], num_heads=[3, 2, 5, 8])),
     'divisible by its 3 heads'),
    (dict(out_indices=(0, 4)), 'out_indices entry 4 is out of range'),
    (dict(out_indices=(-5, )), 'out_indices entry -5 is out of range'),
    (dict(out_indices='3'), 'out_indices must be an int or a sequence of ints'),
    (dict(out_indices=('3', )), "out_indices entry '3' .* is not an integer"),
    (dict(out_indices=(0, 0)), r'names stage\(s\) \[0\] more than once'),
    (dict(out_indices=(3, -1)), r'names stage\(s\) \[3\] more than once'),
    (dict(out_indices=()), 'out_indices is empty'),
    (dict(out_indices=(1.0, )), 'is not an integer'),
    (dict(frozen_stages=5), r'frozen_stages must be in \[-1, 4\]'),
    (dict(global_strides=(32, 32, 32)), 'global_strides must be 4 integers'),
    (dict(global_strides=(32, 32, 24, 64)), 'global_strides must be 4 integers, each a multiple'),
    (dict(global_strides=16), r'multiple of its stage\'s stride'),
    (dict(drop_path_schedule='cosine'), "drop_path_schedule must be 'linear' or 'per_stage'"),
])
def test_bad_arguments_give_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DSNet(**{'arch': 'tiny', **kwargs})


def test_train_step_gives_finite_gradients_everywhere():
    model = DSNet('tiny')
    model.init_weights()
    model.train()
    outs = model(torch.randn(2, 3, 96, 64))
    sum(o.float().pow(2).mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(isinstance(m.weight, nn.Parameter) for m in model.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize('arch, gflops', [('tiny', 1.84), ('small', 3.56)])
def test_flops_match_the_reference_count(arch, gflops):
    # fvcore-style counting, attention matmuls included (base: 8.32 G, see docs/models.md)
    from mmengine.analysis import get_model_complexity_info
    model = DSNet(arch, out_indices=(3, )).eval()
    info = get_model_complexity_info(model, input_shape=(3, 224, 224), show_table=False,
                                     show_arch=False)
    assert abs(info['flops'] / 1e9 - gflops) / gflops < 0.03, info['flops']


def test_out_indices_come_in_stage_order():
    model = DSNet('tiny', out_indices=[3, 1]).eval()
    assert model.out_indices == (1, 3)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [128, 512]


@pytest.mark.parametrize('batch, hw, stage', [(1, (32, 32), 4), (1, (16, 16), 3)])
def test_train_mode_batch_norm_on_a_1x1_map_names_the_stage(batch, hw, stage):
    model = DSNet('tiny').train()
    with pytest.raises(ValueError, match=f'stage {stage} .*1 x 1 map.*batch >= 2.*larger than'):
        model(torch.randn(batch, 3, *hw))
    # what the message offers works
    model(torch.randn(2, 3, *hw))
    model(torch.randn(1, 3, 64, 64))
    DSNet('tiny', norm_eval=True).train()(torch.randn(1, 3, 32, 32))
    model.eval()(torch.randn(1, 3, 32, 32))   # eval: running statistics, any size


def test_docs_say_what_frozen_stages_freezes(repo_root):
    """frozen_stages=i freezes the patch embedding of stage i+1 (test_frozen_stages checks the
    code); the argument table in docs/models.md must say so."""
    import os.path as osp
    row = next(line for line in open(osp.join(repo_root, 'docs', 'models.md'))
               if line.startswith('| `frozen_stages`'))
    assert 'patch embedding of stage i+1' in row
    model = DSNet('tiny', frozen_stages=1)
    assert not any(p.requires_grad for p in model.patch_embeds[1].parameters())
    assert all(p.requires_grad for p in model.patch_embeds[2].parameters())


def test_flop_breakdown_sees_every_module():
    """mmdet's get_flops (mmengine's FlopAnalyzer) attributes FLOPs per module by tracing: the
    modules DS-Net uses must be called, not only read for their weights, or they are reported
    as 'never called' with 0 FLOPs."""
    from mmengine.analysis import FlopAnalyzer
    model = DSNet('tiny', out_indices=(3, )).eval()
    analyzer = FlopAnalyzer(model, (torch.randn(1, 3, 64, 64), ))
    by_module = analyzer.by_module()
    uncalled = {m for m in analyzer.uncalled_modules() if 'drop_path' not in m}
    assert not uncalled, sorted(uncalled)[:5]
    # stage 1 of 64 x 64: 16 x 16 tokens, 64 channels (32 per stream)
    assert by_module['stages.0.0.mixer.proj_in'] == 16 * 16 * 64 * 64
    assert by_module['stages.0.0.mixer.inter.local_qkv'] == 16 * 16 * 32 * 96
    assert by_module[''] == sum(by_module[f'stages.{i}'] for i in range(4)) + \
        sum(by_module[f'patch_embeds.{i}'] for i in range(4)) + by_module['norm']


# ------------------------------------------------------------------ one vocabulary, old names

def test_global_strides_one_per_stage_or_an_int_for_all():
    """One representation: the strides as given reach the blocks, each with its stage's stride;
    an int means every stage. The global grid follows: H / global_stride of the image."""
    assert DSNet('tiny').global_strides == (32, 32, 32, 64)   # the reference's default
    model = DSNet('tiny', global_strides=32).eval()
    assert model.global_strides == (32, 32, 32, 32)
    assert [(s[0].mixer.intra.stride, s[0].mixer.intra.global_stride) for s in model.stages] == \
        [(4, 32), (8, 32), (16, 32), (32, 32)]
    grids = []
    for stage in model.stages:
        stage[0].mixer.intra.register_forward_hook(lambda m, i, o: grids.append(tuple(o[2])))
    with torch.no_grad():
        model(torch.randn(1, 3, 128, 192))
    assert grids == [(4, 6)] * 4
    with pytest.raises(TypeError):
        DSNet('tiny', global_ratios=(8, 4, 2, 1))   # no other spelling


def test_stream_split_is_not_a_conv2d():
    """The 1x1 projection into the two streams returns a pair: it is its own module (with a 1x1
    conv's weight and bias, under the names the reference's conv1 converts to)."""
    from dsnet_mm.models.backbones.dsnet import StreamSplit
    proj = DSNet('tiny').stages[0][0].mixer.proj_in
    assert isinstance(proj, StreamSplit) and not isinstance(proj, nn.Conv2d)
    assert proj.weight.shape == (64, 64, 1, 1) and proj.bias.shape == (64, )
    x = torch.randn(2, 64, 5, 7)
    glob, local = proj(x)
    whole = nn.functional.conv2d(x, proj.weight, proj.bias)
    torch.testing.assert_close(torch.cat([glob, local], 1), whole)


def test_norm_cfg_reaches_every_map_norm():
    default = DSNet('tiny')
    sync = DSNet('tiny', norm_cfg=dict(type='SyncBN'))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in default.modules())
    assert n_bn == 1 + 4 * 9   # the final norm; norm1, norm2 and two local-stream norms per block
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in sync.modules()) == n_bn
    assert list(sync.state_dict()) == list(default.state_dict())


def test_channels_last_is_an_argument():
    assert DSNet('tiny').channels_last
    assert not DSNet('tiny', channels_last=False).channels_last


def _fused_flags(model):
    from dsnet_mm.models.backbones.dsnet import _AttentionModule
    return {m.fused_attn for m in model.modules() if isinstance(m, _AttentionModule)}


def test_one_fused_attention_switch():
    from dsnet_mm.models.backbones.dsnet import set_fused_attn
    model = DSNet('tiny')
    assert _fused_flags(model) == {True}
    set_fused_attn(False, model)               # a built model
    assert _fused_flags(model) == {False}
    set_fused_attn(True, model)
    assert _fused_flags(model) == {True}
    assert not hasattr(model, 'set_fused_attention')   # one switch, one spelling
    try:
        set_fused_attn(False)                  # the default of models built from now on
        assert _fused_flags(DSNet('tiny')) == {False}
        assert _fused_flags(DSNet('tiny', fused_attn=True)) == {True}   # the argument wins
    finally:
        set_fused_attn(True)
    assert _fused_flags(DSNet('tiny')) == {True}


# ------------------------------------------------------------ one conversion of reference keys

def test_checkpoint_filter_fn_returns_our_names_as_they_are():
    from dsnet_mm.models import checkpoint_filter_fn
    sd = DSNet('tiny').state_dict()
    assert checkpoint_filter_fn(sd) is sd
    ref = ReferenceDSNet('tiny').state_dict()
    assert 'head.weight' in checkpoint_filter_fn(ref)
    assert not any(k.startswith('head.') for k in checkpoint_filter_fn(ref, DSNet('tiny')))


def test_every_loading_path_converts_through_checkpoint_filter_fn(tmp_path, monkeypatch):
    """init_cfg Pretrained, load_state_dict, mmengine's load_checkpoint and the converter tool
    all take reference names, through the one function, run once per load."""
    from mmengine.runner import load_checkpoint

    import dsnet_mm.models.backbones.dsnet as dsnet
    import dsnet_mm.models.backbones.dsnet_checkpoint as dsnet_checkpoint
    calls = []
    real = dsnet_checkpoint.checkpoint_filter_fn

    def counting(state_dict, model=None):
        calls.append(type(model).__name__)
        return real(state_dict, model)

    monkeypatch.setattr(dsnet, 'checkpoint_filter_fn', counting)   # what DSNet's loading calls
    monkeypatch.setattr(dsnet_checkpoint, 'checkpoint_filter_fn', counting)   # the tool's
    ref = randomize_(ReferenceDSNet('tiny'))
    path = tmp_path / 'ref.pth'
    torch.save({'model': ref.state_dict()}, path)
    want = ref.blocks3[3].fuse_channel_sa.weight

    def loaded(model):
        torch.testing.assert_close(model.stages[2][3].mixer.inter.global_proj.weight, want)
        return True

    model = DSNet('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert loaded(model) and calls == ['DSNet']
    calls.clear()
    model = DSNet('tiny')
    model.load_state_dict(ref.state_dict())   # the reference's classifier head is dropped
    assert loaded(model) and calls == ['DSNet']
    calls.clear()
    model = DSNet('tiny')
    torch.save({'state_dict': ref.state_dict()}, tmp_path / 'ref_state_dict.pth')   # head included
    load_checkpoint(model, str(tmp_path / 'ref_state_dict.pth'), strict=True)
    assert loaded(model) and calls == ['DSNet']
    calls.clear()
    state_dict, meta = tool_module('model_converters/dsnet_to_mmpretrain.py').convert(str(path))
    assert calls == ['NoneType'] and meta['num_classes'] == 1000
    torch.testing.assert_close(
        state_dict['backbone.stages.2.3.mixer.inter.global_proj.weight'], want)
    # a state dict in this implementation's names passes through as it is
    calls.clear()
    again = DSNet('tiny')
    again.load_state_dict(model.state_dict())
    assert loaded(again) and calls == ['DSNet']
