"""Per-block token features: block discovery, layouts, prefix tokens, model and checkpoint loading."""
import numpy as np
import pytest
import skimage.data
import timm
import torch
import torch.nn as nn

from fan_mm.analysis.features import (BlockFeatureExtractor, build_model, center_crop, find_blocks,
                                      load_backbone_weights, model_inputs, resolve_blocks, stage_last_blocks,
                                      to_pixels, to_tokens)

# small versions of the timm peers (ViT-S, Swin-T, ResNet, ConvNeXt), fast on CPU
SMALL = {
    'vit': ('vit_small_patch16_224', dict(depth=3, embed_dim=48, num_heads=2, img_size=64, reg_tokens=4), 64),
    'swin': ('swin_tiny_patch4_window7_224', dict(embed_dim=24, depths=(1, 1, 2, 1), num_heads=(1, 1, 2, 2)), 224),
    'resnet': ('resnet18', {}, 64),
    'convnext': ('convnext_atto', {}, 64),
}


@pytest.fixture(scope='module')
def photo():
    return center_crop(skimage.data.astronaut(), 224)


def small(kind):
    name, kwargs, size = SMALL[kind]
    return timm.create_model(name, pretrained=False, **kwargs).eval(), size


def photo_input(photo, size):
    return to_pixels([photo, photo[:, ::-1]], (size, size)) * 2 - 1


@pytest.mark.parametrize('kind,num_blocks,first,stages', [
    ('vit', 3, 'blocks.0', ['blocks.2']),
    ('swin', 5, 'layers.0.blocks.0', ['layers.0.blocks.0', 'layers.1.blocks.0', 'layers.2.blocks.1',
                                      'layers.3.blocks.0']),
    ('resnet', 8, 'layer1.0', ['layer1.1', 'layer2.1', 'layer3.1', 'layer4.1']),
    ('convnext', 12, 'stages.0.blocks.0', ['stages.0.blocks.1', 'stages.1.blocks.1', 'stages.2.blocks.5',
                                           'stages.3.blocks.1']),
])
def test_stage_outputs_equal_forward_intermediates(kind, num_blocks, first, stages, photo):
    """Hooked block outputs, reshaped to tokens, are exactly timm's stage features (NCHW, no prefix)."""
    model, size = small(kind)
    ex = BlockFeatureExtractor(model, 'stages')
    assert len(ex) == num_blocks and ex.block_names[0] == first
    x = photo_input(photo, size)
    feats = ex(x)
    assert [f.name for f in feats] == stages
    with torch.no_grad():
        ref = model.forward_intermediates(x, intermediates_only=True)[-len(stages):]
    for f, r in zip(feats, ref):
        B, C, h, w = r.shape
        assert f.grid == (h, w) and f.tokens.shape == (B, h * w, C)
        torch.testing.assert_close(f.tokens, r.flatten(2).transpose(1, 2), rtol=0, atol=0)


def test_vit_every_block_without_prefix_tokens(photo):
    model, size = small('vit')
    assert model.num_prefix_tokens == 5  # class token + 4 registers, all dropped
    x = photo_input(photo, size)
    feats = BlockFeatureExtractor(model)(x)
    with torch.no_grad():
        ref = model.forward_intermediates(x, intermediates_only=True)
    assert len(feats) == len(ref) == 3
    for f, r in zip(feats, ref):
        assert f.grid == (4, 4)
        torch.testing.assert_close(f.tokens, r.flatten(2).transpose(1, 2), rtol=0, atol=0)


def test_cnn_tokens_are_row_major_spatial_positions():
    model, _ = small('resnet')
    x = torch.randn(1, 3, 64, 96)  # non-square: grid (h, w) must follow the image
    f = BlockFeatureExtractor(model, ['layer2.0'])(x)[0]
    with torch.no_grad():
        fmap = model.layer2[0](model.layer1(model.maxpool(model.act1(model.bn1(model.conv1(x))))))
    assert f.grid == (8, 12)
    torch.testing.assert_close(f.tokens[0, 12 * 3 + 5], fmap[0, :, 3, 5])


def test_to_tokens_layouts_and_prefixes():
    x = torch.randn(2, 56, 56, 96)  # timm Swin: channels last
    t, grid = to_tokens(x, (224, 224))
    assert grid == (56, 56) and torch.equal(t, x.reshape(2, -1, 96))
    seq = torch.randn(2, 1 + 196, 8)  # class token, no hint: found from the count
    t, grid = to_tokens(seq, (224, 224))
    assert grid == (14, 14) and torch.equal(t, seq[:, 1:])
    t, grid = to_tokens(seq[:, 1:], (224, 224), num_prefix_tokens=1)  # FAN blocks: hint does not fit
    assert t.shape[1] == 196
    t, _ = to_tokens((seq, 'extra'), (224, 224))  # tuple outputs: the first tensor
    assert t.shape[1] == 196
    with pytest.raises(ValueError, match='NCHW from NHWC'):
        to_tokens(torch.randn(1, 14, 14, 14), (224, 224))
    assert to_tokens(torch.randn(1, 14, 14, 14), (224, 224), layout='NHWC')[1] == (14, 14)
    with pytest.raises(ValueError, match='do not form a grid'):
        to_tokens(torch.randn(1, 1000, 8), (224, 224))


def test_resolve_blocks():
    names = [f'layer{s}.{b}' for s in (1, 2) for b in range(3)]
    assert resolve_blocks(names, -2) == [4]  # the paper's second last block
    assert resolve_blocks(names, ['0', '-1', 'layer2.0']) == [0, 3, 5]
    assert resolve_blocks(names, 'stages') == stage_last_blocks(names) == [2, 5]
    assert resolve_blocks(names, None) == list(range(6))
    with pytest.raises(ValueError, match='out of range'):
        resolve_blocks(names, 6)
    with pytest.raises(ValueError, match='layer2.1'):
        resolve_blocks(names, 'layer2.7')


def test_class_attention_blocks_are_not_blocks():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Identity(), nn.Identity()])
            self.cls_attn_blocks = nn.ModuleList([nn.Identity()])
    assert [n for n, _ in find_blocks(Toy())] == ['blocks.0', 'blocks.1']
    with pytest.raises(ValueError, match='found no blocks'):
        BlockFeatureExtractor(nn.Linear(2, 2))


def test_build_model_random_init_and_errors():
    loaded = build_model('resnet18', 'none')
    assert 'random init' in loaded.label and not loaded.pretrained
    assert loaded.input_size == (224, 224) and loaded.mean == (0.485, 0.456, 0.406)
    with pytest.raises(ValueError, match='resnet18'):
        build_model('resnet_18', 'none')  # close match suggested
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_model('resnet18', 'missing.pth')


def test_build_model_loads_checkpoint_file(tmp_path):
    """A checkpoint file goes through timm's pretrained_cfg_overlay(file=...) path and is labelled."""
    kwargs = dict(depth=2, embed_dim=48, num_heads=2)
    src = timm.create_model('vit_small_patch16_224', pretrained=False, **kwargs)
    path = tmp_path / 'vit_tiny_test.pth'
    torch.save(src.state_dict(), path)
    loaded = build_model('vit_small_patch16_224', str(path), **kwargs)
    assert loaded.pretrained and 'vit_tiny_test.pth' in loaded.label
    for k, v in src.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v, rtol=0, atol=0)


def test_load_backbone_weights_from_mm_checkpoint(tmp_path):
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    state = {f'backbone.{k}': torch.randn_like(v, dtype=torch.float32) if v.is_floating_point() else v
             for k, v in backbone.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.randn(2, 4, 1, 1)
    torch.save({'state_dict': state, 'meta': {}}, tmp_path / 'mm.pth')
    result = load_backbone_weights(backbone, str(tmp_path / 'mm.pth'))
    assert result['missing'] == []
    torch.testing.assert_close(backbone[0].weight, state['backbone.0.weight'])
    torch.save({'state_dict': {'neck.w': torch.zeros(1)}}, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match='none of its keys'):
        load_backbone_weights(backbone, str(tmp_path / 'other.pth'))


def test_model_inputs_follow_pretrained_cfg(photo):
    loaded = build_model('vit_small_patch16_224', 'none', depth=1, embed_dim=48, num_heads=2)
    pixels = to_pixels([photo], loaded.input_size)
    assert pixels.shape == (1, 3, 224, 224) and 0 <= pixels.min() and pixels.max() <= 1
    # this ViT's pretrained_cfg uses mean = std = 0.5
    torch.testing.assert_close(model_inputs(loaded, pixels), pixels * 2 - 1)


def test_center_crop_is_square_and_centred():
    img = np.zeros((100, 300, 3), dtype=np.uint8)
    img[:, 140:160] = 255  # a bright bar in the middle stays in the middle
    crop = center_crop(img, 50)
    assert crop.shape == (50, 50, 3) and crop.dtype == np.uint8
    assert crop[:, 25].mean() > 200 and crop[:, 0].mean() < 10
    assert center_crop(skimage.data.camera(), 32).shape == (32, 32, 3)  # grey -> RGB


# ---- fan_mm families: run when their branches are merged ------------------------------------------------------

def _fan_mm_model(name):
    try:
        import fan_mm.models  # noqa: F401
    except ImportError:
        pass
    if not timm.is_model(name):
        pytest.skip(f'{name} is not registered (fan_mm backbone family not merged yet)')
    return timm.create_model(name, pretrained=False).eval()


@pytest.mark.parametrize('name,grid', [
    ('fan_tiny_12_p16_224', (14, 14)),
    ('fan_tiny_8_p4_hybrid', (14, 14)),
    ('lvvit_t', (14, 14)),
    ('fan_swin_tiny_patch4_window7_224', (7, 7)),
])
def test_fan_mm_families(name, grid, photo):
    model = _fan_mm_model(name)
    ex = BlockFeatureExtractor(model)
    assert not any('cls_attn' in n for n in ex.block_names)
    feats = ex(photo_input(photo, 224)[:1])
    assert feats[-1].grid == grid
    for f in feats:
        assert f.tokens.shape[1] == f.grid[0] * f.grid[1]


def test_blocks_that_do_not_run():
    class StopsEarly(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)])

        def forward(self, x):
            return self.blocks[1](self.blocks[0](x))  # the last block is never used
    x = torch.randn(1, 3, 8, 8)
    with pytest.warns(UserWarning, match='left out'):
        feats = BlockFeatureExtractor(StopsEarly(), 'all')(x)
    assert [f.name for f in feats] == ['blocks.0', 'blocks.1']
    with pytest.raises(RuntimeError, match=r"blocks.2'\] did not run"):
        BlockFeatureExtractor(StopsEarly(), [-1])(x)


# ---- mm configs: the backbone of an mmdet config, with an mm checkpoint -----------------------------------------

MM_CONFIG = '''
default_scope = 'mmdet'
model = dict(
    type='RetinaNet',
    data_preprocessor=dict(type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(type='ResNet', depth=18, out_indices=(0, 1, 2, 3),
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')))
'''


def test_mm_config_backbone_and_checkpoint(tmp_path, photo):
    pytest.importorskip('mmcv.ops', reason='mm configs need mmcv with ops')
    pytest.importorskip('mmdet.models')
    config = tmp_path / 'retinanet_r18_toy.py'
    config.write_text(MM_CONFIG)
    loaded = build_model(str(config), 'none', img_size=64)  # init_cfg (a download) is not used
    assert 'random init' in loaded.label and loaded.input_size == (64, 64)
    assert loaded.mean == pytest.approx((0.485, 0.456, 0.406)) and not loaded.extra['bgr']
    state = {f'backbone.{k}': v + 0.01 if v.is_floating_point() else v
             for k, v in loaded.model.state_dict().items()}
    state['bbox_head.retina_cls.weight'] = torch.zeros(1)
    torch.save({'state_dict': state, 'meta': {}}, tmp_path / 'epoch_1.pth')
    trained = build_model(str(config), str(tmp_path / 'epoch_1.pth'), img_size=64)
    assert trained.pretrained and 'epoch_1.pth' in trained.label
    torch.testing.assert_close(trained.model.conv1.weight, state['backbone.conv1.weight'])
    ex = BlockFeatureExtractor(trained.model, 'stages')
    assert ex.block_names[:2] == ['layer1.0', 'layer1.1'] and len(ex) == 8
    feats = ex(model_inputs(trained, to_pixels([photo], trained.input_size)))
    assert [f.grid for f in feats] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    with torch.no_grad():
        outs = trained.model(model_inputs(trained, to_pixels([photo], trained.input_size)))
    for f, o in zip(feats, outs):  # the mm backbone's own outputs are the stage ends
        torch.testing.assert_close(f.tokens, o.flatten(2).transpose(1, 2), rtol=0, atol=0)
