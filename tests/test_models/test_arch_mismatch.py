"""A DS-Net checkpoint of another arch loaded into a DS-Net model stops with an error that names
both archs, through every entry point; mmengine's loaders use strict=False and would otherwise
only warn and run on half-random weights. Partial loads that are legitimate keep working."""
import os.path as osp

import pytest
import torch

from dsnet_mm.models import DSNet
from helpers import QUICKSTART_CONFIG, ROOT, make_tiny_shapes, write_tiny_config

T_INTO_S = (r"this checkpoint is DS-Net-T \(depths 2, 2, 4, 1\); the model is DS-Net-S \(depths "
            r"3, 4, 8, 3\): use a DS-Net-T config \(backbone arch='tiny', e.g. "
            r'configs/\*\*/\*dsnet_t_\*.py\), or load a DS-Net-S checkpoint')


@pytest.fixture(scope='module')
def tiny_backbone():
    return DSNet('tiny').state_dict()


@pytest.fixture(scope='module')
def tiny_checkpoint(tiny_backbone, tmp_path_factory):
    """A DS-Net-T backbone saved as a runner checkpoint (what load_from / --checkpoint read)."""
    path = tmp_path_factory.mktemp('ckpt') / 'dsnet_t.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in tiny_backbone.items()},
                'meta': {}}, path)
    return str(path)


# ------------------------------------------------------------------ the loading hook itself


def test_load_state_dict_non_strict_refuses_another_depth(tiny_backbone):
    with pytest.raises(ValueError, match=T_INTO_S):
        DSNet('small').load_state_dict(tiny_backbone, strict=False)
    with pytest.raises(ValueError, match=r'checkpoint is DS-Net-S .*the model is DS-Net-T'):
        DSNet('tiny').load_state_dict(DSNet('small').state_dict(), strict=False)


def test_another_width_is_refused(tiny_backbone):
    narrow = dict(channels=[32, 64, 128, 256], depths=[2, 2, 4, 1], num_heads=[1, 2, 2, 4])
    with pytest.raises(ValueError, match=r'checkpoint is a custom DS-Net \(channels 32, 64, 128, '
                                         r'256; depths 2, 2, 4, 1\); the model is DS-Net-T'):
        DSNet('tiny').load_state_dict(DSNet(narrow).state_dict(), strict=False)
    with pytest.raises(ValueError, match=r"checkpoint is DS-Net-T .*the model is a custom DS-Net "
                                         r"\(channels 32, .*checkpoint of the model's arch"):
        DSNet(narrow).load_state_dict(tiny_backbone, strict=False)


def test_reference_layout_of_another_arch_is_refused_too():
    from reference_dsnet import ReferenceDSNet
    with pytest.raises(ValueError, match=T_INTO_S):
        DSNet('small').load_state_dict(ReferenceDSNet('tiny').state_dict(), strict=False)


def test_legitimate_partial_loads_keep_working(tiny_backbone):
    model = DSNet('tiny')
    # a backbone without the final norm (e.g. frozen or replaced): loads what it has
    partial = {k: v for k, v in tiny_backbone.items() if not k.startswith('norm.')}
    result = model.load_state_dict(partial, strict=False)
    assert {'norm.weight', 'norm.running_var'} <= set(result.missing_keys)
    assert all(k.startswith('norm.') for k in result.missing_keys)
    # no DS-Block at all (another module's weights): not this hook's business
    assert model.load_state_dict({'other.weight': torch.zeros(1)}, strict=False).unexpected_keys


# ------------------------------------------------------------------ the entry points users call


def test_runner_load_from_refuses_a_tiny_checkpoint_for_a_small_detector(tiny_checkpoint,
                                                                         tmp_path):
    """``mim test CONFIG --checkpoint X`` sets ``load_from``: Runner.test loads it with
    strict=False before the first batch."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    data = make_tiny_shapes(tmp_path / 'shapes', num_train=2, num_val=2, size=64)
    cfg = Config.fromfile(write_tiny_config(tmp_path / 'cfg.py', data))
    cfg.model.backbone.arch = 'small'
    cfg.load_from = tiny_checkpoint
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match="cannot load these DS-Net weights \\(the keys under "
                                         f"'backbone.'\\): {T_INTO_S}"):
        runner.test()


def test_init_detector_refuses_it(tiny_checkpoint):
    from mmdet.apis import init_detector
    from mmengine.config import Config
    cfg = Config.fromfile(QUICKSTART_CONFIG)
    cfg.model.backbone.arch = 'small'
    with pytest.raises(ValueError, match=T_INTO_S):
        init_detector(cfg, tiny_checkpoint, device='cpu')


def test_init_detector_takes_a_matching_backbone_whose_neck_and_heads_differ(tiny_checkpoint):
    """The checkpoint holds the backbone only: the detector's neck and heads stay as built."""
    from mmdet.apis import init_detector
    model = init_detector(QUICKSTART_CONFIG, tiny_checkpoint, device='cpu')
    want = torch.load(tiny_checkpoint)['state_dict']['backbone.stages.2.3.ffn.fc1.weight']
    torch.testing.assert_close(model.backbone.stages[2][3].ffn.fc1.weight, want)


def test_mmpretrain_get_model_refuses_it(tiny_checkpoint):
    from mmpretrain import get_model
    with pytest.raises(ValueError, match=T_INTO_S):
        get_model(osp.join(ROOT, 'configs', 'imagenet', 'dsnet_s_8xb128_in1k.py'),
                  pretrained=tiny_checkpoint)


def test_mmpretrain_get_model_takes_a_classifier_whose_head_differs(tiny_backbone, tmp_path):
    from mmpretrain import get_model
    sd = {f'backbone.{k}': v for k, v in tiny_backbone.items()}
    sd.update({'head.fc.weight': torch.zeros(10, 512), 'head.fc.bias': torch.zeros(10)})
    torch.save({'state_dict': sd}, tmp_path / 'ten_classes.pth')
    model = get_model(osp.join(ROOT, 'configs', 'imagenet', 'dsnet_t_8xb128_in1k.py'),
                      pretrained=str(tmp_path / 'ten_classes.pth'))
    torch.testing.assert_close(model.backbone.patch_embeds[0].proj.weight,
                               tiny_backbone['patch_embeds.0.proj.weight'])
    assert model.head.fc.weight.shape[0] == 1000   # the head of another size is left as built


def test_init_cfg_pretrained_refuses_it(tiny_checkpoint):
    model = DSNet('small', init_cfg=dict(type='Pretrained', checkpoint=tiny_checkpoint,
                                         prefix='backbone.'))
    with pytest.raises(ValueError, match=f'(?s)does not fit DSNet: 427/841 tensors match.*'
                                         f'Likely fix: {T_INTO_S}'):
        model.init_weights()
