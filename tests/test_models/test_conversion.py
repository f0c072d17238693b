"""Weight converters and loading safety: foreign checkpoints in, the same outputs out; checkpoints
that do not fit stop with an error that says why."""
import os
import os.path as osp
import pickle
import random
import re

import pytest
import torch

from dsnet_mm.models import DSNet
from helpers import run_converter, tool_module, write_source
from reference_dsnet import ReferenceDSNet, paddle_state_dict


@pytest.fixture(scope='module')
def image():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(5))


def build_classifier(arch='tiny'):
    return tool_module('model_converters/dsnet_to_mmpretrain.py').build_classifier(arch, 1000)


@pytest.mark.parametrize('layout', ['deit', 'paddle', 'state_dict', 'flat', 'ema_only'])
def test_convert_and_get_the_same_outputs(layout, reference, image, tmp_path):
    ext = '.pdparams' if layout == 'paddle' else '.pth'
    src = write_source(reference, layout, tmp_path / f'DSNet_tiny_pretrained{ext}')
    dst = tmp_path / 'out' / 'dsnet_t_in1k.pth'
    # once as a user runs it; the other layouts call its main() in this process
    out = run_converter('dsnet_to_mmpretrain.py', src, dst, as_script=layout == 'paddle')
    assert out.returncode == 0, out.stderr
    assert 'DS-Net-tiny' in out.stdout and 'verified with strict=True' in out.stdout

    ckpt = torch.load(dst, map_location='cpu')           # torch's default weights_only=True
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta']['arch'] == 'tiny'
    assert ckpt['meta']['source_layout'] == ('paddleclas' if layout == 'paddle' else 'pytorch-reference')
    model = build_classifier('tiny').eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    with torch.no_grad():
        expected = reference(image)
        got = model(image, mode='tensor')
    assert expected.abs().max() > 1
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)


def test_paddle_bn_and_transposes(reference, tmp_path):
    from helpers import convert_dsnet_reference
    backbone, head = convert_dsnet_reference(paddle_state_dict(reference))
    sd = reference.state_dict()
    torch.testing.assert_close(backbone['stages.0.1.mixer.intra.global_qkv.weight'],
                               sd['blocks1.1.channel_up.weight'])       # [in, out] -> [out, in]
    torch.testing.assert_close(backbone['stages.2.0.norm1.running_var'], sd['blocks3.0.norm1.running_var'])
    assert backbone['stages.2.0.norm1.num_batches_tracked'].dtype == torch.long
    torch.testing.assert_close(head['weight'], sd['head.weight'])


def test_variant_is_detected(tmp_path):
    small = ReferenceDSNet('small')
    src = write_source(small, 'deit', tmp_path / 'small.pth')
    out = run_converter('dsnet_to_mmpretrain.py', src, tmp_path / 's.pth')
    assert out.returncode == 0, out.stderr
    assert 'DS-Net-small' in out.stdout
    assert torch.load(tmp_path / 's.pth')['meta']['arch'] == 'small'


def test_roundtrip_back_to_the_reference_layout(reference, tmp_path):
    src = write_source(reference, 'deit', tmp_path / 'ref.pth')
    assert run_converter('dsnet_to_mmpretrain.py', src, tmp_path / 'mm.pth').returncode == 0
    out = run_converter('mmpretrain_to_dsnet.py', tmp_path / 'mm.pth', tmp_path / 'back.pth',
                        as_script=True)
    assert out.returncode == 0, out.stderr
    back = torch.load(tmp_path / 'back.pth')['model']
    sd = reference.state_dict()
    assert list(back) == list(sd)
    for k in sd:
        assert torch.equal(back[k], sd[k]), k


def test_converter_refuses_what_it_cannot_convert(tmp_path):
    torch.save({'state_dict': {'conv1.weight': torch.zeros(64, 3, 7, 7)}}, tmp_path / 'r50.pth')
    out = run_converter('dsnet_to_mmpretrain.py', tmp_path / 'r50.pth', tmp_path / 'x.pth')
    assert out.returncode == 1
    assert 'is not a DS-Net reference checkpoint' in out.stderr
    assert not (tmp_path / 'x.pth').exists()
    out = run_converter('dsnet_to_mmpretrain.py', tmp_path / 'missing.pth', tmp_path / 'x.pth')
    assert out.returncode == 1 and 'checkpoint not found' in out.stderr


def test_pdparams_reader_allows_numpy_only(tmp_path):
    from dsnet_mm.utils import load_pdparams

    class Evil:
        def __reduce__(self):
            return (os.system, ('echo pwned > ' + str(tmp_path / 'pwned'), ))

    path = tmp_path / 'evil.pdparams'
    with open(path, 'wb') as f:
        pickle.dump({'x': Evil()}, f)
    with pytest.raises(pickle.UnpicklingError, match='not allowed in a .pdparams'):
        load_pdparams(str(path))
    assert not (tmp_path / 'pwned').exists()


# ------------------------------------------------------------------ loading into downstream models


@pytest.fixture(scope='module')
def converted(reference, tmp_path_factory):
    root = tmp_path_factory.mktemp('conv')
    src = write_source(reference, 'deit', root / 'ref.pth')
    assert run_converter('dsnet_to_mmpretrain.py', src, root / 'dsnet_t.pth').returncode == 0
    return str(root / 'dsnet_t.pth')


def test_mmdet_loads_it_with_prefix_backbone(converted, reference, image):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = mmdet_base('models/mask-rcnn_r50_fpn.py').model
    cfg.backbone = dict(type='DSNet', arch='tiny',
                        init_cfg=dict(type='Pretrained', checkpoint=converted, prefix='backbone.'))
    cfg.neck.in_channels = [64, 128, 320, 512]
    detector = MODELS.build(cfg)
    detector.init_weights()
    with torch.no_grad():
        feats = detector.backbone.eval()(image)
        expected = reference.forward_features(image)
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e, rtol=1e-5, atol=1e-4)


def test_mmseg_loads_it_with_prefix_backbone(converted, reference):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    seg = MODELS.build(dict(
        type='EncoderDecoder',
        backbone=dict(type='DSNet', arch='tiny',
                      init_cfg=dict(type='Pretrained', checkpoint=converted, prefix='backbone.')),
        decode_head=dict(type='FCNHead', in_channels=512, in_index=3, channels=32, num_convs=1,
                         num_classes=4, norm_cfg=dict(type='BN'))))
    seg.init_weights()
    torch.testing.assert_close(seg.backbone.stages[1][0].mixer.inter.local_qkv.weight,
                               reference.blocks2[0].cross_channel_up_conv.weight)


def test_reference_file_loads_without_conversion(reference, image, tmp_path):
    # init_cfg straight at the downloaded reference .pth (prefix None): converted on the fly
    src = write_source(reference, 'deit', tmp_path / 'ref.pth')
    model = DSNet('tiny', init_cfg=dict(type='Pretrained', checkpoint=str(src)))
    model.init_weights()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(image)[3], reference.forward_features(image)[3],
                                   rtol=1e-5, atol=1e-4)


def mmdet_base(rel):
    import mmdet
    from mmengine.config import Config
    return Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_', rel))


def _init(model_kwargs, checkpoint, prefix):
    model = DSNet(**model_kwargs, init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint), prefix=prefix))
    model.init_weights()


def test_wrong_variant_is_refused(converted):
    with pytest.raises(ValueError) as e:
        _init(dict(arch='small'), converted, 'backbone.')
    msg = str(e.value)
    assert 'does not fit DSNet' in msg and '/841 tensors match' in msg
    assert 'missing: stages.0.2.' in msg            # small has a 3rd block in stage 1
    assert ('this checkpoint is DS-Net-T (depths 2, 2, 4, 1); the model is DS-Net-S '
            "(depths 3, 4, 8, 3): use a DS-Net-T config (backbone arch='tiny'") in msg


def test_wrong_prefix_is_refused(converted):
    with pytest.raises(ValueError, match=r"no tensor in .* starts with prefix 'model\.'.*"
                                         r"\['backbone\.', 'head\.'\]"):
        _init(dict(arch='tiny'), converted, 'model.')
    # no prefix on a classifier checkpoint: the keys are a whole model's
    with pytest.raises(ValueError, match=r"(?s)0/427 tensors match.*prefix='backbone\.'"):
        _init(dict(arch='tiny'), converted, None)


def test_detector_of_another_backbone_is_refused(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = mmdet_base('models/retinanet_r50_fpn.py').model
    cfg.backbone.init_cfg = None
    cfg.backbone.depth = 18
    cfg.neck.in_channels = [64, 128, 256, 512]
    torch.save({'state_dict': MODELS.build(cfg).state_dict(), 'meta': {}}, tmp_path / 'det.pth')
    with pytest.raises(ValueError) as e:
        _init(dict(arch='tiny'), tmp_path / 'det.pth', 'backbone.')
    assert '0/427 tensors match' in str(e.value)
    assert 'not a DS-Net checkpoint' in str(e.value)


def test_missing_and_corrupt_files(converted, tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found.*dsnet_to_mmpretrain'):
        _init(dict(arch='tiny'), tmp_path / 'nope.pth', 'backbone.')
    data = open(converted, 'rb').read()
    (tmp_path / 'cut.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='truncated, corrupt or not a PyTorch checkpoint'):
        _init(dict(arch='tiny'), tmp_path / 'cut.pth', 'backbone.')


def test_mmseg_pretrained_argument_takes_a_classifier_checkpoint(converted, reference):
    # mmseg configs pass EncoderDecoder(pretrained=PATH), which becomes backbone.pretrained
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    from mmengine.config import ConfigDict
    init_default_scope('mmseg')
    seg = MODELS.build(ConfigDict(
        type='EncoderDecoder', pretrained=converted,
        backbone=dict(type='DSNet', arch='tiny'),
        decode_head=dict(type='FCNHead', in_channels=512, in_index=3, channels=32, num_convs=1,
                         num_classes=4, norm_cfg=dict(type='BN'))))
    seg.init_weights()
    torch.testing.assert_close(seg.backbone.norm.running_var, reference.norm.running_var)


def test_random_bytes_are_corrupt_not_unsafe(converted, tmp_path):
    """A file of random bytes the size of a real checkpoint is a corrupt file, not one holding
    disallowed objects. Where the unpickler stops depends on the bytes (an unknown opcode, an
    empty stack...), so the bytes are seeded and the test asks only that torch's own complaint
    is passed on."""
    noise = tmp_path / 'noise.pth'
    noise.write_bytes(random.Random(0).randbytes(osp.getsize(converted)))
    with pytest.raises(RuntimeError) as e:
        _init(dict(arch='tiny'), noise, 'backbone.')
    msg = str(e.value)
    assert 'truncated, corrupt or not a PyTorch checkpoint' in msg
    assert re.search(r'the reader stopped at: \w+(Error|Exception): \S', msg), msg
    assert 'refusing' not in msg and 'safe loading' not in msg


@pytest.mark.parametrize('fmt', ['zip', 'plain_pickle', 'pdparams'])
def test_disallowed_objects_are_named(fmt, tmp_path):
    import argparse
    from dsnet_mm.utils import read_checkpoint
    obj = {'w': torch.zeros(2).numpy() if fmt == 'pdparams' else torch.zeros(2),
           'args': argparse.Namespace(lr=1)}
    path = tmp_path / ('x.pdparams' if fmt == 'pdparams' else 'x.pth')
    if fmt == 'zip':
        torch.save(obj, path)
    else:
        with open(path, 'wb') as f:
            pickle.dump(obj, f, protocol=4)   # protocol 4: torch's legacy reader stops at FRAME
    with pytest.raises(RuntimeError, match=r'refusing to unpickle .*argparse\.Namespace'):
        read_checkpoint(str(path))


def test_swin_weights_are_not_a_dsnet_checkpoint(tmp_path):
    """Swin's keys also start with 'stages.': still named as another backbone."""
    from mmdet.models.backbones import SwinTransformer
    swin = SwinTransformer(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))
    path = tmp_path / 'swin.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in swin.state_dict().items()}}, path)
    with pytest.raises(ValueError) as e:
        _init(dict(arch='tiny'), path, 'backbone.')
    assert 'not a DS-Net checkpoint' in str(e.value)
    assert 'patch_embed.projection.weight' in str(e.value)   # shows keys of the file


def _mmseg_model(pretrained):
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    return MODELS.build(ConfigDict(
        type='EncoderDecoder', pretrained=str(pretrained),
        backbone=dict(type='DSNet', arch='tiny'),
        decode_head=dict(type='FCNHead', in_channels=512, in_index=3, channels=32, num_convs=1,
                         num_classes=4, norm_cfg=dict(type='BN'))))


def test_mmseg_pretrained_resnet_says_set_model_pretrained_none(tmp_path):
    """An mmseg config that swapped in DSNet but kept the base config's ResNet model.pretrained:
    the fix is model.pretrained=None, not init_cfg=None."""
    from mmdet.models.backbones import ResNet
    resnet = tmp_path / 'resnet18.pth'
    torch.save(ResNet(18).state_dict(), resnet)
    with pytest.raises(ValueError) as e:
        _mmseg_model(resnet).init_weights()
    assert 'not a DS-Net checkpoint' in str(e.value) and 'model.pretrained=None' in str(e.value)
    with pytest.raises(FileNotFoundError) as e:
        _mmseg_model(tmp_path / 'resnet50_v1c.pth').init_weights()
    assert 'model.pretrained=None' in str(e.value) and 'init_cfg=None' not in str(e.value)
