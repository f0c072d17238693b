"""DS-Net in timm (``import dsnet_mm.timm``): the registered models, their timm interface, the
same numbers as ``DSNet`` and as the mmpretrain ImageNet classifier, ``pretrained=True`` through
dsnet_mm's download cache (a PaddleClas-layout file served on 127.0.0.1), ``features_only``, and
mmpretrain's ``TIMMBackbone`` inside the mmdet config. DS-Net-T at 64 x 64 unless a size matters."""
import http.server
import os
import pickle

import pytest
import timm
import torch

import dsnet_mm.timm  # noqa: F401  (registers the models)
from dsnet_mm.models import DSNet
from dsnet_mm.timm import DSNetTimm
from dsnet_mm.utils.download import CheckpointDownloadError, cached_path
from helpers import LoopbackServer, build_model, load_cfg
from reference_dsnet import paddle_state_dict, randomize_

PADDLECLAS_URL = 'https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/DSNet_{}_pretrained.pdparams'
TIMM_CONFIG = 'configs/mask_rcnn_dsnet_s_timm_fpn_1x_coco.py'


@pytest.fixture(scope='module')
def tiny():
    """``dsnet_tiny`` with non-trivial weights (BN statistics included), in eval mode."""
    torch.manual_seed(0)
    return randomize_(timm.create_model('dsnet_tiny'), seed=5).eval()


@pytest.fixture(scope='module')
def image():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def max_diff(a, b):
    return (a - b).abs().max().item()


# ------------------------------------------------------------------ registry and interface
def test_registered_with_pretrained_cfgs():
    assert timm.list_models('dsnet_*') == ['dsnet_base', 'dsnet_small', 'dsnet_tiny']
    assert timm.list_pretrained('dsnet_*') == ['dsnet_base.in1k', 'dsnet_small.in1k',
                                               'dsnet_tiny.in1k']
    for arch in ('tiny', 'small', 'base'):
        cfg = timm.models.get_pretrained_cfg(f'dsnet_{arch}')
        assert cfg.url == PADDLECLAS_URL.format(arch)
        assert (cfg.num_classes, cfg.input_size, cfg.first_conv, cfg.classifier) == \
            (1000, (3, 224, 224), 'patch_embeds.0.proj', 'head')
        assert cfg.mean == (0.485, 0.456, 0.406) and cfg.crop_pct == 0.875


def test_same_parameters_as_the_imagenet_classifier(tiny):
    assert isinstance(tiny, DSNet)   # DSNet's own modules, not a copy of them
    assert sum(p.numel() for p in tiny.parameters()) == 10_534_312   # DS-Net-T + Linear(512, 1000)


def test_classifier_interface(tiny, image):
    with torch.no_grad():
        feats = tiny.forward_features(image)
        assert feats.shape == (2, 512, 2, 2)
        assert tiny.forward_head(feats, pre_logits=True).shape == (2, 512)
        assert torch.equal(tiny.forward_head(feats), tiny(image))
    assert tiny.get_classifier() is tiny.head and tiny.head.out_features == 1000

    model = timm.create_model('dsnet_tiny', num_classes=10, global_pool='avgmax').eval()
    with torch.no_grad():
        assert model(image).shape == (2, 10)
        model.reset_classifier(5)
        assert model(image).shape == (2, 5)
        model.reset_classifier(0, '')   # no pooling, no classifier: the normed stage-4 map
        assert model(image).shape == (2, 512, 2, 2)
    assert isinstance(model.get_classifier(), torch.nn.Identity)


def test_group_matcher_and_grad_checkpointing(tiny):
    from timm.models import group_parameters
    groups = group_parameters(tiny, tiny.group_matcher())
    grouped = [n for names in groups.values() for n in names]
    assert sorted(grouped) == sorted(n for n, _ in tiny.named_parameters())
    names = {n: g for g, ns in groups.items() for n in ns}
    # the stem first; a patch embedding with the first block of its stage; the classifier last
    assert names['patch_embeds.0.proj.weight'] == min(groups)
    assert names['patch_embeds.2.proj.weight'] == names['stages.2.0.norm1.weight']
    assert names['head.weight'] == max(groups)
    model = timm.create_model('dsnet_tiny')
    model.set_grad_checkpointing()
    assert all(b.with_cp for s in model.stages for b in s)


def test_bad_arguments_say_what_to_give():
    with pytest.raises(RuntimeError, match='Unknown model'):
        timm.create_model('dsnet_huge')
    with pytest.raises(ValueError, match=r'4 feature stages \(reductions 4, 8, 16, 32\)'):
        timm.create_model('dsnet_tiny', features_only=True, out_indices=(0, 4))
    with pytest.raises(ValueError, match=r'out_indices=5: an int means the last n stages'):
        timm.create_model('dsnet_tiny', features_only=True, out_indices=5)
    with pytest.raises(ValueError, match='names a stage twice'):
        timm.create_model('dsnet_tiny', features_only=True, out_indices=(3, -1))
    with pytest.raises(TypeError, match='features_only=True'):
        timm.create_model('dsnet_tiny', out_indices=(0, 1), final_norm=False)


# ------------------------------------------------------------------ features
def test_features_only_are_dsnet_backbone_maps(tiny, image):
    """The four maps, channels and reductions of ``DSNet(out_indices=(0, 1, 2, 3))`` (stage 4
    after the final norm), identical with the same weights."""
    feats = timm.create_model('dsnet_tiny', features_only=True).eval()
    feats.model.load_state_dict({k: v for k, v in tiny.state_dict().items()
                                 if not k.startswith('head.')})
    assert feats.feature_info.channels() == [64, 128, 320, 512]
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    assert not any(n.startswith('model.head.') for n, _ in feats.named_parameters())
    backbone = DSNet('tiny', out_indices=(0, 1, 2, 3)).eval()
    backbone.load_state_dict(feats.model.state_dict())
    with torch.no_grad():
        got, want = feats(image), backbone(image)
    assert [tuple(f.shape) for f in got] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 320, 4, 4),
                                             (2, 512, 2, 2)]
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_features_only_out_indices_prune_later_stages(image):
    feats = timm.create_model('dsnet_tiny', features_only=True, out_indices=(0, 2)).eval()
    assert feats.feature_info.channels() == [64, 320]
    assert feats.feature_info.reduction() == [4, 16]
    assert len(feats.model.stages) == 3   # stage 4 and the final norm are gone
    with torch.no_grad():
        assert [tuple(f.shape) for f in feats(image)] == [(2, 64, 16, 16), (2, 320, 4, 4)]


# ------------------------------------------------------------------ the mmpretrain classifier
def test_logits_equal_the_mmpretrain_imagenet_classifier(tiny):
    """configs/imagenet/dsnet_t_8xb128_in1k.py's model (DSNet + GlobalAveragePooling +
    LinearClsHead) and ``dsnet_tiny`` with its weights give the same logits."""
    cfg, scope = load_cfg('configs/imagenet/dsnet_t_8xb128_in1k.py')
    classifier = build_model(cfg, scope).eval()
    mm = classifier.state_dict()
    mapped = {k[len('backbone.'):] if k.startswith('backbone.') else 'head.' + k[len('head.fc.'):]: v
              for k, v in mm.items()}
    assert set(mapped) == set(tiny.state_dict())
    classifier.load_state_dict({k: tiny.state_dict()[m] for k, m in zip(mm, mapped)})
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = classifier(x, mode='tensor')
        got = tiny(x)
    diff = max_diff(got, want)
    print(f'dsnet_tiny vs mmpretrain ImageClassifier, 2 x 3 x 224 x 224: max |logit diff| = {diff:.3g}')
    assert diff <= 1e-5, diff


# ------------------------------------------------------------------ pretrained=True
class _Files(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(('GET', self.path))
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def paddle_server(reference, tmp_path_factory):
    """The reference DS-Net-T (tests/reference_dsnet.py, random weights) saved as PaddleClas
    saves it (a pickle of numpy arrays, BN ``_mean``/``_variance``, Linear weights [in, out])."""
    root = tmp_path_factory.mktemp('served')
    with open(root / 'DSNet_tiny_pretrained.pdparams', 'wb') as f:
        pickle.dump(paddle_state_dict(reference), f, protocol=2)
    server = LoopbackServer(lambda *a, **k: _Files(*a, directory=str(root), **k), 300)
    server.root = root
    yield server
    server.stop()


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return tmp_path / 'torch_home'


def test_pretrained_downloads_through_the_cache_and_equals_the_reference(
        reference, paddle_server, torch_home):
    url = paddle_server.url('DSNet_tiny_pretrained.pdparams')
    model = timm.create_model('dsnet_tiny', pretrained=True,
                              pretrained_cfg_overlay=dict(url=url)).eval()
    assert paddle_server.gets == ['/DSNet_tiny_pretrained.pdparams']
    assert os.path.isfile(cached_path(url))
    assert cached_path(url).startswith(str(torch_home))
    assert 'state_dict' not in model.pretrained_cfg   # loaded, not kept
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = reference(x)
        assert max_diff(model(x), want) < 1e-5

        # a second build reads the cached file: no request
        again = timm.create_model('dsnet_tiny', pretrained=True,
                                  pretrained_cfg_overlay=dict(url=url)).eval()
        assert len(paddle_server.gets) == 1
        assert torch.equal(again(x), model(x))

        # another number of classes: everything but the 1000-class head
        ten = timm.create_model('dsnet_tiny', pretrained=True, num_classes=10,
                                pretrained_cfg_overlay=dict(url=url)).eval()
        assert torch.equal(ten.forward_features(x), model.forward_features(x))

        feats = timm.create_model('dsnet_tiny', pretrained=True, features_only=True,
                                  pretrained_cfg_overlay=dict(url=url)).eval()
        assert 'state_dict' not in feats.pretrained_cfg
        assert 'state_dict' not in feats.model.pretrained_cfg
        assert torch.equal(feats(x)[-1], model.forward_features(x))


def test_pretrained_file_is_read_by_the_safe_reader(reference, paddle_server, tmp_path):
    """A local .pdparams (``file``): timm's own loader (torch.load) cannot read it."""
    path = str(paddle_server.root / 'DSNet_tiny_pretrained.pdparams')
    model = timm.create_model('dsnet_tiny', pretrained=True,
                              pretrained_cfg_overlay=dict(file=path)).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert max_diff(model(x), reference(x)) < 1e-5

    evil = tmp_path / 'evil.pdparams'
    evil.write_bytes(pickle.dumps({'x': os.system}, protocol=2))   # a pickle that would call code
    with pytest.raises(RuntimeError, match='posix.system|os.system'):
        timm.create_model('dsnet_tiny', pretrained=True, pretrained_cfg_overlay=dict(file=str(evil)))


def test_pretrained_errors_name_the_url_and_the_variant(paddle_server, torch_home):
    url = paddle_server.url('DSNet_tiny_pretrained.pdparams')
    with pytest.raises(ValueError, match=r'this checkpoint is DS-Net-T .*the model is DS-Net-S'):
        timm.create_model('dsnet_small', pretrained=True, pretrained_cfg_overlay=dict(url=url))
    missing = paddle_server.url('DSNet_nothing_pretrained.pdparams')
    with pytest.raises(CheckpointDownloadError, match=f'cannot download checkpoint {missing}'):
        timm.create_model('dsnet_tiny', pretrained=True, pretrained_cfg_overlay=dict(url=missing))


# ------------------------------------------------------------------ TIMMBackbone in mmdet
def test_mmdet_config_with_timm_backbone_runs_and_equals_dsnet():
    """configs/mask_rcnn_dsnet_s_timm_fpn_1x_coco.py builds (mmpretrain's TIMMBackbone around
    ``dsnet_small``, features_only) and detects; its backbone maps are ``DSNet``'s."""
    cfg, scope = load_cfg(TIMM_CONFIG)
    assert 'dsnet_mm.timm' in cfg.custom_imports.imports
    assert cfg.model.backbone.type == 'mmpretrain.TIMMBackbone' and cfg.model.backbone.pretrained
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=20)
    cfg.model.test_cfg.rcnn.max_per_img = 5
    model = build_model(cfg, scope).eval()
    timm_model = model.backbone.timm_model.model
    assert isinstance(timm_model, DSNetTimm) and timm_model.norm_eval
    assert [m.drop_prob for m in (timm_model.stages[0][1].drop_path, timm_model.stages[3][2].drop_path)] \
        == pytest.approx([0.2 / 17, 0.2])   # drop_path_rate reached the timm model

    backbone = DSNet('small', out_indices=(0, 1, 2, 3)).eval()
    backbone.load_state_dict(timm_model.state_dict())
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for a, b in zip(model.backbone(x), backbone(x)):
            assert torch.equal(a, b)

    from mmdet.structures import DetDataSample
    img = torch.randint(0, 256, (3, 64, 96), dtype=torch.uint8)
    sample = DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1., 1.)))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), training=False)
        pred, = model(**data, mode='predict')
    assert pred.pred_instances.bboxes.shape[1] == 4
    assert pred.pred_instances.masks.shape[1:] == (64, 96)
