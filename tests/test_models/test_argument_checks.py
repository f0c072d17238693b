"""Arguments of DSNet and DSFPN that would pass unchecked or fail deep inside torch / mmcv /
mmengine are refused when the module is built, by an error that names the argument, the valid
values and a fix."""
import pytest
import torch

from dsnet_mm.models import DSNet, DSFPN

TINY = dict(channels=[64, 128, 320, 512], depths=[2, 2, 4, 1], num_heads=[1, 2, 5, 8])
GN_EXAMPLE = r"dict\(type='GN', num_groups=32\)"


@pytest.mark.parametrize('kwargs, error, match', [
    # mmengine read init_cfg['checkpoint'] only in init_weights: a bare KeyError
    (dict(init_cfg=dict(type='Pretrained')), ValueError,
     r"DSNet init_cfg .* has no checkpoint: give dict\(type='Pretrained', "
     r"checkpoint=PATH_OR_URL, prefix='backbone.'\).*or init_cfg=None"),
    (dict(init_cfg=[dict(type='TruncNormal', layer='Linear', std=.02),
                    dict(type='Pretrained', prefix='backbone.')]), ValueError, 'has no checkpoint'),
    (dict(init_cfg=['Pretrained']), TypeError, 'init_cfg entries must be dicts with a type'),
    # accepted silently before
    (dict(drop_path_rate=-0.1), ValueError, r'drop_path_rate must be a number in \[0, 1\).*-0.1'),
    (dict(drop_path_rate=1.0), ValueError, r'drop_path_rate must be a number in \[0, 1\)'),
    (dict(attn_drop_rate=-0.5), ValueError, r'attn_drop_rate must be a number in \[0, 1\)'),
    (dict(attn_drop_rate='0.1'), ValueError, r'attn_drop_rate must be a number'),
    # torch's error about a weight of size [0, 64, 1, 1]
    (dict(arch=dict(TINY, mlp_ratio=0)), ValueError,
     r"arch\['mlp_ratio'\] must be a positive number .*DS-Net uses 4.*got 0"),
    (dict(arch=dict(TINY, mlp_ratio=-2.)), ValueError, r"arch\['mlp_ratio'\] must be a positive"),
    # ZeroDivisionError before
    (dict(arch=dict(TINY, num_heads=[0, 2, 5, 8])), ValueError,
     r"arch\['num_heads'\] must be 4 positive integers"),
    (dict(arch=dict(TINY, depths=[2, 2, 4.5, 1])), ValueError,
     r"arch\['depths'\] must be 4 positive integers"),
    # mmcv's bare AssertionError
    (dict(norm_cfg=dict(type='GN')), ValueError,
     rf"norm_cfg=.*'GN'.*GroupNorm needs num_groups.*\[32, 64, 128, 160, 256, 320, 512\].*"
     rf'{GN_EXAMPLE}'),
    (dict(norm_cfg=dict(type='GN', num_groups=48)), ValueError,
     rf'norm_cfg=.*num_groups must be a positive integer that divides every width.*{GN_EXAMPLE}'),
    (dict(norm_cfg=dict(type='LN')), ValueError, r"norm_cfg=.*'LN'.*not its channels"),
    (dict(norm_cfg=dict(type='NoSuchNorm')), ValueError,
     r"norm_cfg=.*no norm layer of type 'NoSuchNorm' is registered; use dict\(type='BN'\)"),
    (dict(norm_cfg='BN'), TypeError,
     r"norm_cfg must be a dict with a type, e.g. dict\(type='BN'\)"),
])
def test_dsnet_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DSNet(**{'arch': 'tiny', **kwargs})


def test_dsnet_group_norm_with_the_suggested_groups_builds_and_runs():
    model = DSNet('tiny', norm_cfg=dict(type='GN', num_groups=32), drop_path_rate=0.,
                  attn_drop_rate=0.)
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in model.modules()) > 0
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [64, 128, 320, 512]
    # a small positive mlp_ratio is still a valid arch
    DSNet(dict(TINY, mlp_ratio=0.5))


def dsfpn(**kwargs):
    return DSFPN(**{'in_channels': [64, 128, 320, 512], 'out_channels': 256, 'num_outs': 5,
                    **kwargs})


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(context_norm_cfg=dict(type='GN')), ValueError,
     rf'context_norm_cfg=.*GroupNorm needs num_groups.*\[128, 256\].*{GN_EXAMPLE}'),
    (dict(norm_cfg=dict(type='GN')), ValueError,
     rf'norm_cfg=.*GroupNorm needs num_groups.*\[256\].*{GN_EXAMPLE}'),
    (dict(context_norm_cfg=dict(type='LN')), ValueError, "context_norm_cfg=.*'LN'"),
    (dict(attn_drop_rate=-0.1), ValueError,
     r'attn_drop_rate must be a number in \[0, 1\) .*the default is 0.0'),
    (dict(attn_drop_rate=1.5), ValueError, r'attn_drop_rate must be a number in \[0, 1\)'),
    (dict(init_cfg=dict(type='Pretrained')), ValueError,
     r"DSFPN init_cfg .* has no checkpoint: .*prefix='neck.'"),
])
def test_dsfpn_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        dsfpn(**kwargs)


def test_dsfpn_group_norm_with_the_suggested_groups_builds_and_runs():
    neck = dsfpn(norm_cfg=dict(type='GN', num_groups=32),
                 context_norm_cfg=dict(type='GN', num_groups=32)).eval()
    feats = [torch.randn(1, c, 64 // s, 64 // s)
             for c, s in zip([64, 128, 320, 512], [4, 8, 16, 32])]
    with torch.no_grad():
        assert len(neck(feats)) == 5
