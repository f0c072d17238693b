"""Layer-wise learning-rate decay: ``DSNet.get_layer_depth`` and the optimizer that the LLRD
detection config builds through mmengine (``build_optim_wrapper``, the real constructor)."""
import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.utils import import_modules_from_strings

from dsnet_mm.models import DSNet
from helpers import build_model, load_cfg

LLRD_CONFIG = 'configs/mask_rcnn_dsnet_s_fpn_llrd_1x_coco.py'


def forward_order(backbone):
    """``(name, block)`` for every backbone parameter in the order the input meets them; block
    is ``(stage, index)`` for a DS-Block's parameters, else None."""
    out = []
    for i in range(backbone.num_stages):
        embed = backbone.patch_embeds[i]
        out += [(f'patch_embeds.{i}.{n}', None) for n, _ in embed.named_parameters()]
        for j, block in enumerate(backbone.stages[i]):
            out += [(f'stages.{i}.{j}.{n}', (i, j)) for n, _ in block.named_parameters()]
    return out + [(f'norm.{n}', None) for n, _ in backbone.norm.named_parameters()]


def test_layer_depth_follows_the_blocks():
    backbone = DSNet(arch='tiny')
    depths = backbone.arch_settings['depths']
    order = forward_order(backbone)
    assert {n for n, _ in order} == {n for n, _ in backbone.named_parameters()}
    ids = [backbone.get_layer_depth('backbone.' + n, 'backbone.') for n, _ in order]
    max_id = sum(depths) + 2
    assert {m for _, m in ids} == {max_id}
    layer = [i for i, _ in ids]
    assert all(0 <= i < max_id for i in layer)
    assert layer == sorted(layer), 'layer ids must not decrease with depth'
    by_name = dict(zip((n for n, _ in order), layer))
    assert {by_name[n] for n in by_name if n.startswith('patch_embeds.0.')} == {0}
    # one id per DS-Block, consecutive blocks one apart across stages: 1 .. sum(depths)
    blocks = sorted({b for _, b in order if b is not None})
    block_ids = [{by_name[n] for n, b in order if b == blk} for blk in blocks]
    assert block_ids == [{k + 1} for k in range(sum(depths))]
    assert block_ids[-1] == {max_id - 2}
    # the downsampling before stage i goes with the last block of stage i - 1 (frozen with it)
    for i in range(1, 4):
        assert {by_name[n] for n in by_name if n.startswith(f'patch_embeds.{i}.')} == \
            {sum(depths[:i])}
    assert {by_name[n] for n in by_name if n.startswith('norm.')} == {max_id - 1}
    # outside the backbone (neck, heads), and a bare backbone without prefix
    assert backbone.get_layer_depth('neck.lateral_convs.0.conv.weight', 'backbone.') == \
        (max_id - 1, max_id)
    assert backbone.get_layer_depth('stages.1.0.ffn.fc1.weight') == (depths[0] + 1, max_id)


def expected_layer(backbone, name):
    """The layer of a detector parameter by the convention above, from the module structure."""
    depths = backbone.arch_settings['depths']
    parts = name.split('.')
    if parts[0] != 'backbone' or parts[1] == 'norm':
        return sum(depths) + 1
    stage = int(parts[2])
    if parts[1] == 'patch_embeds':
        return sum(depths[:stage])
    return sum(depths[:stage]) + int(parts[3]) + 1


@pytest.mark.parametrize('frozen_stages', [-1, 1])
def test_llrd_config_builds_the_decayed_param_groups(frozen_stages):
    cfg, scope = load_cfg(LLRD_CONFIG)
    import_modules_from_strings(**cfg.custom_imports)
    cfg.model.backbone.update(arch='tiny', frozen_stages=frozen_stages)
    model = build_model(cfg, scope)
    with DefaultScope.overwrite_default_scope(scope):
        optim = build_optim_wrapper(model, cfg.optim_wrapper)

    base_lr = cfg.optim_wrapper.optimizer.lr
    base_wd = cfg.optim_wrapper.optimizer.weight_decay
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    assert 0.7 <= rate < 1
    max_id = sum(model.backbone.arch_settings['depths']) + 2
    names = {id(p): n for n, p in model.named_parameters()}
    modules = dict(model.named_modules())
    seen = []
    for group in optim.optimizer.param_groups:
        for p in group['params']:
            name = names[id(p)]
            seen.append(name)
            layer = expected_layer(model.backbone, name)
            assert group['lr'] == pytest.approx(base_lr * rate**(max_id - layer - 1)), name
            owner = modules[name.rsplit('.', 1)[0]]
            no_decay = (isinstance(owner, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm,
                                           nn.GroupNorm))
                        or name.endswith('.bias') or 'pos_embed' in name)
            assert group['weight_decay'] == (0. if no_decay else base_wd), name
    # every trainable parameter in exactly one group; frozen ones in none
    assert len(seen) == len(set(seen))
    assert set(seen) == {n for n, p in model.named_parameters() if p.requires_grad}
    if frozen_stages == 1:
        assert not any(n.startswith(('backbone.patch_embeds.0.', 'backbone.stages.0.',
                                     'backbone.patch_embeds.1.')) for n in seen)
    # the lowest lr is the first trainable layer's: the stem, or the first block of stage 2
    first = 0 if frozen_stages == -1 else model.backbone.arch_settings['depths'][0] + 1
    lrs = {g['lr'] for g in optim.optimizer.param_groups}
    assert max(lrs) == pytest.approx(base_lr)
    assert min(lrs) == pytest.approx(base_lr * rate**(max_id - 1 - first))


def test_llrd_needs_a_backbone_with_layer_depths():
    cfg, scope = load_cfg(LLRD_CONFIG)
    import_modules_from_strings(**cfg.custom_imports)
    model = nn.Module()
    model.backbone = nn.Conv2d(3, 8, 3)
    with DefaultScope.overwrite_default_scope(scope), \
            pytest.raises(NotImplementedError, match='get_layer_depth.*Conv2d'):
        build_optim_wrapper(model, cfg.optim_wrapper)
