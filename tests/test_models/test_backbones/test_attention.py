"""The fused attention path (F.scaled_dot_product_attention) equals the explicit
softmax(QK^T / sqrt d) V, on the primitive, on each attention of a DS-Block (self-attention of the
global stream, both co-attention directions) and on a whole DS-Net-T; the switch reaches every
attention; and on CPU the fused path really runs the fused kernel (not SDPA's math fallback)."""
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from dsnet_mm.models import set_fused_attn
from dsnet_mm.models.backbones.dsnet import (DSNet, InterScaleAlignment, IntraScalePropagation,
                                             multi_head_attention, split_heads, to_tokens)
from helpers import randomize_bn_

TOL = dict(rtol=1e-5, atol=1e-5)


def explicit(q, k, v):
    """softmax(q k^T / sqrt d) v, written out independently of the module under test."""
    attn = torch.einsum('bhnd,bhmd->bhnm', q, k) / q.shape[-1]**0.5
    return torch.einsum('bhnm,bhmd->bhnd', attn.softmax(-1), v)


def assert_grads_close(a, b):
    """Gradients sum rounding over many positions (and several are ~0: biases feeding a
    train-mode BN): compare to 1e-4 of each tensor's scale (at least 1)."""
    for k in b:
        err = (a[k] - b[k]).abs().max().item()
        assert err <= 1e-4 * max(1., b[k].abs().max().item()), (k, err)


@pytest.mark.parametrize('heads,nq,nk', [(1, 3136, 49), (2, 49, 784), (5, 196, 196), (8, 7, 3)])
def test_multi_head_attention_fused_equals_explicit(heads, nq, nk):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, heads, n, 32) for n in (nq, nk, nk))
    ref = explicit(q, k, v)
    torch.testing.assert_close(multi_head_attention(q, k, v, fused=True), ref, **TOL)
    torch.testing.assert_close(multi_head_attention(q, k, v, fused=False), ref, **TOL)


def test_multi_head_attention_on_strided_head_views():
    """q/k/v as the model makes them: views into one (B, N, 3C) projection, not contiguous."""
    torch.manual_seed(0)
    ql, kl, vl = split_heads(torch.randn(2, 300, 3 * 64), 2)
    qg, kg, vg = split_heads(torch.randn(2, 12, 3 * 64), 2)
    for q, k, v in ((ql, kg, vg), (qg, kl, vl)):
        assert not q.is_contiguous()
        torch.testing.assert_close(multi_head_attention(q, k, v, fused=True), explicit(q, k, v), **TOL)


def _with_fused(module, fused):
    module.fused_attn = fused
    return module


def test_self_attention_of_the_global_stream():
    torch.manual_seed(0)
    m = IntraScalePropagation(64, 2, stride=8, global_stride=32).eval()   # 4x coarser
    randomize_bn_(m)
    local, glob = torch.randn(2, 64, 20, 28), torch.randn(2, 64, 20, 28)
    with torch.no_grad():
        a = _with_fused(m, True)(local, glob)
        b = _with_fused(m, False)(local, glob)
    assert a[2] == b[2] == (5, 7)
    torch.testing.assert_close(a[0], b[0], **TOL)
    torch.testing.assert_close(a[1], b[1], **TOL)
    # and against attention written out here, on the module's own projections
    tokens = to_tokens(F.interpolate(glob, size=(5, 7), mode='bilinear', align_corners=False))
    q, k, v = split_heads(m.global_qkv(m.global_norm(tokens)), 2)
    want = tokens + explicit(q, k, v).transpose(1, 2).reshape(2, 35, 64)
    torch.testing.assert_close(a[1], want, **TOL)


@pytest.mark.parametrize('hw,ng', [((24, 40), 15), ((7, 9), 40)])
def test_both_co_attention_directions(hw, ng):
    """Nq != Nk in both directions, with more local than global tokens and the other way round."""
    torch.manual_seed(0)
    C, heads = 96, 3
    m = InterScaleAlignment(C, heads).eval()
    randomize_bn_(m)
    local, tokens = torch.randn(2, C, *hw), torch.randn(2, ng, C)
    with torch.no_grad():
        fl, ft = _with_fused(m, True)(local, tokens)
        el, et = _with_fused(m, False)(local, tokens)
        # independent transcription: 1x1 conv for the local q/k/v, explicit attention
        ql, kl, vl = split_heads(to_tokens(m.local_qkv(m.local_norm(local))), heads)
        qg, kg, vg = split_heads(m.global_qkv(m.global_norm(tokens)), heads)
        nl = hw[0] * hw[1]
        g2l = m.local_proj(explicit(ql, kg, vg).transpose(1, 2).reshape(2, nl, C))
        l2g = m.global_proj(explicit(qg, kl, vl).transpose(1, 2).reshape(2, ng, C))
        want_local = local + g2l.transpose(1, 2).reshape(2, C, *hw)
        want_tokens = tokens + l2g
    for got in (fl, el):   # global -> local direction
        torch.testing.assert_close(got, want_local, **TOL)
    for got in (ft, et):   # local -> global direction
        torch.testing.assert_close(got, want_tokens, **TOL)


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return randomize_bn_(DSNet('tiny', init_cfg=None)).eval()


@pytest.mark.parametrize('size', [(2, 3, 96, 160), (1, 3, 93, 131)])
def test_whole_dsnet_t_fused_equals_explicit(tiny, size):
    x = torch.randn(*size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        set_fused_attn(True, tiny)
        fused = tiny(x)
        set_fused_attn(False, tiny)
        expl = tiny(x)
        set_fused_attn(True, tiny)
    for a, b in zip(fused, expl):
        torch.testing.assert_close(a, b, **TOL)


def test_fused_equals_explicit_in_train_mode_with_gradients():
    """Train mode (BN batch statistics), attention dropout off so both paths are deterministic."""
    torch.manual_seed(0)
    models = []
    for fused in (True, False):
        torch.manual_seed(0)
        models.append(DSNet('tiny', attn_drop_rate=0., drop_path_rate=0., fused_attn=fused).train())
    x = torch.randn(2, 3, 64, 96)
    outs, grads = [], []
    for m in models:
        out = m(x)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out).backward()
        outs.append(out)
        grads.append({k: p.grad for k, p in m.named_parameters()})
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, **TOL)
    assert_grads_close(grads[0], grads[1])


def test_switch_reaches_every_attention(tiny, monkeypatch):
    calls = []
    real = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counting)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        set_fused_attn(True, tiny)
        tiny(x)
        assert len(calls) == 3 * 9   # self-attention + two co-attentions in each of the 9 blocks
        calls.clear()
        set_fused_attn(False, tiny)
        tiny(x)
        assert calls == []
        set_fused_attn(True, tiny)


@pytest.mark.parametrize('channels_last', [True, False])
def test_fused_path_runs_the_fused_cpu_kernel(tiny, channels_last):
    """Guards a silent 3-5x slowdown: SDPA falls back to its math path (materialised Nq x Nk
    matrix) when q/k/v have a non-unit stride in the head dim, as a conv + to_tokens on an NCHW
    map gives."""
    x = torch.randn(1, 3, 128, 160)
    tiny.channels_last = channels_last
    try:
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            tiny(x)
    finally:
        tiny.channels_last = True
    names = [e.name for e in prof.events()]
    assert names.count('aten::_scaled_dot_product_flash_attention_for_cpu') == 27
    assert 'aten::_scaled_dot_product_attention_math' not in names


def test_channels_last_is_layout_only():
    """The channels-last internals change no value: outputs and gradients equal the NCHW run."""
    torch.manual_seed(0)
    m = randomize_bn_(DSNet('tiny', attn_drop_rate=0., drop_path_rate=0.)).train()
    x = torch.randn(2, 3, 72, 100)
    res = []
    for cl in (True, False):
        m.channels_last = cl
        m.zero_grad()
        out = m(x)
        assert all(o.is_contiguous() for o in out)
        sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out).backward()
        res.append(([o.detach() for o in out], {k: p.grad.clone() for k, p in m.named_parameters()}))
    for a, b in zip(res[0][0], res[1][0]):
        torch.testing.assert_close(a, b, **TOL)
    assert_grads_close(res[0][1], res[1][1])
