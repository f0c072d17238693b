"""DSFPN: mmdet FPN's contract (shapes, levels, extra convs, parameters) plus the dual-stream
blocks of dsnet_mm's DS-FPN design (the paper's DS-FPN, laid out as dsnet_mm/models/necks/dsfpn.py
documents)."""
import pytest
import torch

import dsnet_mm  # noqa: F401  (registers DSFPN)
from dsnet_mm.models import DSFPN
from dsnet_mm.models.backbones.dsnet import DualStreamMixer

torch.set_num_threads(1)

IN_CH = [64, 128, 320, 512]
STRIDES = (4, 8, 16, 32)


def feats(h=64, w=96, batch=1, channels=IN_CH, strides=STRIDES):
    """Backbone-like maps: ceil(H / stride), as DSNet's padding patch embeddings give."""
    return [torch.randn(batch, c, -(-h // s), -(-w // s)) for c, s in zip(channels, strides)]


def small_neck(**kw):
    kw.setdefault('out_channels', 64)
    kw.setdefault('num_heads', 1)   # 32-wide heads at 64 channels
    return DSFPN(in_channels=kw.pop('in_channels', IN_CH), **kw)


def test_design_of_section5():
    neck = DSFPN(IN_CH, 256, 5)
    assert len(neck.context_blocks) == 4
    assert neck.global_strides == [32] * 4                 # global stream at 1/32 of the image
    for block, stride in zip(neck.context_blocks, (4, 8, 16, 32)):
        assert isinstance(block.mixer, DualStreamMixer)   # the backbone's own module
        assert (block.mixer.intra.stride, block.mixer.intra.global_stride) == (stride, 32)
        assert block.mixer.intra.num_heads == 4 and block.mixer.inter.num_heads == 4
        assert block.mixer.intra.local_conv.groups == 128  # depthwise on the 128 local channels


@pytest.mark.parametrize('extra,num_outs', [(False, 5), ('on_input', 5), ('on_output', 5),
                                            ('on_lateral', 5), (True, 6), (False, 4)])
def test_output_shapes(extra, num_outs):
    neck = small_neck(num_outs=num_outs, add_extra_convs=extra).eval()
    outs = neck(feats(64, 96))
    assert len(outs) == num_outs
    expect = [(16, 24), (8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    for o, hw in zip(outs, expect):
        assert o.shape == (1, 64, *hw)
    n_extra_convs = num_outs - 4 if extra else 0
    assert len(neck.fpn_convs) == 4 + n_extra_convs
    if extra in ('on_input', True):
        assert neck.fpn_convs[4].conv.in_channels == 512


def test_start_and_end_level():
    neck = small_neck(start_level=1, num_outs=5, add_extra_convs='on_input').eval()
    outs = neck(feats(64, 96))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert [b.mixer.intra.stride for b in neck.context_blocks] == [8, 16, 32]

    neck = small_neck(start_level=1, end_level=2, num_outs=2).eval()
    outs = neck(feats(64, 96))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (4, 6)]
    assert len(neck.lateral_convs) == 2 and len(neck.context_blocks) == 2

    # three inputs (backbone out_indices=(1, 2, 3)): their strides must be given
    neck = small_neck(in_channels=IN_CH[1:], num_outs=5, add_extra_convs='on_output',
                      in_strides=(8, 16, 32)).eval()
    assert neck.in_strides == [8, 16, 32]
    assert [b.mixer.intra.stride for b in neck.context_blocks] == [8, 16, 32]
    outs = neck(feats(64, 96, channels=IN_CH[1:], strides=(8, 16, 32)))
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]


@pytest.mark.parametrize('hw', [(67, 101), (33, 35), (5, 7)])
def test_odd_sizes(hw):
    """Unpadded (mmseg whole inference) and tiny inputs: coarse maps of 1 x 1, odd halves."""
    neck = small_neck(num_outs=5, add_extra_convs='on_input').eval()
    ins = feats(*hw)
    outs = neck(ins)
    for o, x in zip(outs[:4], ins):
        assert o.shape[-2:] == x.shape[-2:]
        assert torch.isfinite(o).all()
    assert outs[4].shape[-2:] == tuple((s + 1) // 2 for s in ins[3].shape[-2:])


def test_scale_factor_upsample():
    neck = small_neck(num_outs=4, upsample_cfg=dict(scale_factor=2, mode='nearest')).eval()
    outs = neck(feats(64, 96))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_gradients_reach_every_parameter():
    neck = small_neck(num_outs=5, add_extra_convs='on_input', relu_before_extra_convs=True)
    neck.init_weights()
    neck.train()
    ins = [x.requires_grad_() for x in feats(64, 96, batch=2)]
    outs = neck(ins)
    sum(o.square().mean() for o in outs).backward()
    for name, p in neck.named_parameters():
        assert p.grad is not None, f'{name} got no gradient'
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f'{name} got an all-zero gradient'
    for x in ins:
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_dual_stream_blocks_change_the_output():
    """The blocks are on the path: zeroing their output projections gives plain FPN features."""
    neck = small_neck(num_outs=4).eval()
    neck.init_weights()
    ins = feats(64, 96)
    with torch.no_grad():
        before = neck(ins)
        for b in neck.context_blocks:
            b.mixer.proj_out.weight.zero_()
            b.mixer.proj_out.bias.zero_()
        after = neck(ins)
    from mmdet.models.necks import FPN
    fpn = FPN(IN_CH, 64, 4).eval()
    fpn.load_state_dict({k: v for k, v in neck.state_dict().items()
                         if not k.startswith('context_blocks.')})
    with torch.no_grad():
        plain = fpn(ins)
    for a, b, p in zip(before, after, plain):
        assert not torch.allclose(a, b)
        torch.testing.assert_close(b, p)


@pytest.mark.parametrize('extra', [False, 'on_input', 'on_output'])
def test_same_fpn_parameters_as_mmdet(extra):
    from mmdet.models.necks import FPN
    kw = dict(in_channels=IN_CH, out_channels=256, num_outs=5, add_extra_convs=extra)
    ours = {k: v.shape for k, v in DSFPN(**kw).state_dict().items()
            if not k.startswith('context_blocks.')}
    theirs = {k: v.shape for k, v in FPN(**kw).state_dict().items()}
    assert ours == theirs
    # and nothing else besides the dual-stream blocks
    assert all(k.startswith(('lateral_convs.', 'fpn_convs.', 'context_blocks.'))
               for k in DSFPN(**kw).state_dict())


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_registry_build(scope):
    import importlib
    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    cfg = dict(type='DSFPN', in_channels=IN_CH, out_channels=64, num_heads=1, num_outs=5)
    with DefaultScope.overwrite_default_scope(scope):
        neck = registry.build(cfg)
    assert type(neck) is DSFPN
    assert len(neck(feats(64, 64))) == 5


@pytest.mark.parametrize('kwargs,err,match', [
    (dict(in_channels=512), TypeError, 'in_channels'),
    (dict(add_extra_convs='on_top'), ValueError, 'add_extra_convs'),
    (dict(add_extra_convs=1), TypeError, 'add_extra_convs'),
    (dict(num_outs=3), ValueError, 'num_outs=3'),
    (dict(start_level=4), ValueError, 'start_level'),
    (dict(start_level=2, end_level=1, num_outs=1), ValueError, 'end_level'),
    (dict(end_level=2, num_outs=5), ValueError, 'end_level'),
    (dict(out_channels=250), ValueError, 'num_heads'),
    (dict(out_channels=256, num_heads=3), ValueError, 'num_heads'),
    (dict(in_strides=(8, 16, 32)), ValueError, 'in_strides'),
])
def test_bad_arguments(kwargs, err, match):
    args = dict(in_channels=IN_CH, out_channels=256, num_outs=5)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        DSFPN(**args)


def test_wrong_number_of_inputs():
    neck = small_neck(num_outs=4)
    with pytest.raises(ValueError, match='input levels'):
        neck(feats(64, 64)[:3])


def test_init_keeps_pretrained_weights(tmp_path):
    """init_weights must not re-randomise attention Linears a Pretrained init_cfg loaded."""
    src = small_neck(num_outs=4)
    src.init_weights()
    path = tmp_path / 'neck.pth'
    torch.save({'state_dict': {f'neck.{k}': v for k, v in src.state_dict().items()}}, path)
    dst = small_neck(num_outs=4, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                               prefix='neck.'))
    dst.init_weights()
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v, msg=k)


def test_three_inputs_without_strides_are_refused():
    """(0, 1, 2) and (1, 2, 3) give the same relative sizes: a default would be a silent guess
    (the global stream at 1/16 instead of 1/32 of the image for out_indices=(0, 1, 2))."""
    with pytest.raises(ValueError, match=r'in_strides.*\(4, 8, 16\) for out_indices=\(0, 1, 2\)'):
        small_neck(in_channels=IN_CH[:3], num_outs=3)
    neck = small_neck(in_channels=IN_CH[:3], num_outs=3, in_strides=(4, 8, 16)).eval()
    # 1/32 of the image
    assert [(b.mixer.intra.stride, b.mixer.intra.global_stride)
            for b in neck.context_blocks] == [(4, 32), (8, 32), (16, 32)]
    outs = neck(feats(64, 96, channels=IN_CH[:3], strides=(4, 8, 16)))
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 24), (8, 12), (4, 6)]


def test_inputs_of_the_wrong_widths_name_both():
    """ResNet's widths into a neck built for DS-Net's: named, not a raw conv error."""
    neck = small_neck(num_outs=5).eval()
    with pytest.raises(ValueError, match=r'DSFPN.*\[64, 128, 320, 512\].*\[256, 512, 1024, 2048\]'):
        neck(feats(64, 96, channels=[256, 512, 1024, 2048]))


# ------------------------------------------------------------ built on mmdet's FPN, one vocabulary

def test_extends_mmdets_fpn():
    from mmdet.models.necks import FPN
    neck = small_neck(num_outs=5, add_extra_convs='on_input')
    assert isinstance(neck, FPN)
    assert neck.add_extra_convs == 'on_input' and neck.backbone_end_level == 4


def test_global_strides_per_level_or_one_for_all():
    """The same argument as DSNet's: the global stream's stride relative to the image, one per
    input level or an int for all; the global grid of each level follows from it."""
    neck = small_neck(num_outs=4, global_strides=(32, 32, 32, 64)).eval()
    assert neck.global_strides == [32, 32, 32, 64]
    assert [b.mixer.intra.global_stride for b in neck.context_blocks] == [32, 32, 32, 64]
    grids = []
    for b in neck.context_blocks:
        b.mixer.intra.register_forward_hook(lambda m, i, o: grids.append(tuple(o[2])))
    with torch.no_grad():
        neck(feats(128, 128))
    # top-down: P5 first; 128 / 64 = 2 for P5, 128 / 32 = 4 for the others
    assert grids == [(2, 2), (4, 4), (4, 4), (4, 4)]
    assert small_neck(num_outs=4, global_strides=16).global_strides == [16] * 4
    with pytest.raises(ValueError, match='global_strides .* one for each of the 4 input levels'):
        small_neck(num_outs=4, global_strides=(32, 32))


def test_default_init_covers_the_stream_split_projections():
    """Xavier (mmdet FPN's init) reaches the dual-stream blocks' 1x1 input projections, which
    are not Conv2d modules (they return a pair)."""
    neck = small_neck(num_outs=4)
    neck.init_weights()
    proj_in = neck.context_blocks[0].mixer.proj_in
    assert not isinstance(proj_in, torch.nn.Conv2d)
    assert torch.all(proj_in.bias == 0)   # Xavier's bias; nn.Conv2d's default is uniform
    assert proj_in.weight.abs().max() <= (6 / (2 * 64)) ** 0.5 + 1e-6   # xavier_uniform bound


def test_context_norm_cfg_and_attn_drop_rate_reach_the_blocks():
    neck = small_neck(num_outs=4, context_norm_cfg=dict(type='SyncBN'), attn_drop_rate=0.2)
    assert any(getattr(m, 'attn_drop_rate', 0) == 0.2 for m in neck.modules())
    assert isinstance(neck.context_blocks[0].norm, torch.nn.SyncBatchNorm)
    assert isinstance(neck.context_blocks[0].mixer.intra.local_norm, torch.nn.SyncBatchNorm)


def test_fused_attention_switch_of_the_neck():
    from dsnet_mm.models.backbones.dsnet import _AttentionModule, set_fused_attn

    def flags(neck):
        return {m.fused_attn for m in neck.modules() if isinstance(m, _AttentionModule)}
    neck = small_neck(num_outs=4)
    assert flags(neck) == {True} and flags(small_neck(num_outs=4, fused_attn=False)) == {False}
    set_fused_attn(False, neck)
    assert flags(neck) == {False}
    set_fused_attn(True, neck)
    assert flags(neck) == {True}
