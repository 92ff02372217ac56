"""FANHybrid / FANViT dense backbones: layouts, training switches, pretrained loading, registration."""
import re

import pytest
import torch
import torch.nn as nn

import fan_mm.models  # noqa: F401
from fan_mm.models.backbones import FANHybrid, FANViT
from fan_mm.models.backbones import base as base_module
from fan_mm.models.checkpoint_utils import CheckpointError
from fan_test_utils import (GOLDEN, KEYS, cls_free_error, golden, golden_input, nchw_to_tokens,
                            official_state_dict, read_keys, tap_error)

TOL = 1e-4
H, W = 64, 96  # non-square, multiple of 32
# Small custom architectures for the numeric tests (the same code as tiny ... large, a fraction of the cost);
# the real sizes are checked on the meta device and by the pretrained tests.
SMALL_HYBRID = dict(embed_dim=64, depth=2, num_heads=2, hybrid_depths=(1, 1), hybrid_dims=(32, 48))
SMALL_VIT = dict(embed_dim=64, depth=3, num_heads=2)


def _check_layout(model, outs):
    assert len(outs) == len(model.out_channels) == len(model.out_strides)
    for out, c, s in zip(outs, model.out_channels, model.out_strides):
        assert tuple(out.shape) == (2, c, H // s, W // s)


def _forward_backward(model):
    outs = model(torch.randn(2, 3, H, W))
    _check_layout(model, outs)
    sum(o.square().mean() for o in outs).backward()
    # every kept parameter is used (no DDP find_unused_parameters needed) and matters: none is kept whose
    # gradient is zero, as the class token's path would be (FAN.prune_class_token)
    # (channel processing's q bias is inert by construction, softmax over tokens cancels a per-channel shift,
    # and its gradient is zero up to rounding; it stays, as in the official model)
    assert all(p.grad is not None for p in model.parameters())
    dead = [n for n, p in model.named_parameters() if not p.grad.any() and not n.endswith('.mlp.q.bias')]
    assert not dead


@pytest.mark.parametrize('kwargs, channels, strides', [
    (dict(), [128, 256, 192, 768], [4, 8, 16, 32]),
    (dict(feat_downsample=False), [128, 256, 192, 192], [4, 8, 16, 16]),
    (dict(out_indices=(1, 3)), [256, 768], [8, 32]),
])
def test_hybrid_layout_and_backward(kwargs, channels, strides):
    with torch.device('meta'):
        tiny = FANHybrid(arch='tiny', **kwargs)
    assert tiny.out_channels == channels and tiny.out_strides == strides
    torch.manual_seed(0)
    _forward_backward(FANHybrid(arch=SMALL_HYBRID, **kwargs).train())


@pytest.mark.parametrize('kwargs, channels, strides', [
    (dict(), [48, 96, 192, 192], [4, 8, 16, 32]),
    (dict(block_indices=(0, 1, 2, -1)), [48, 96, 192, 192], [4, 8, 16, 32]),
    (dict(mode='single_scale'), [192] * 4, [16] * 4),
    (dict(mode='single_scale', block_indices=(0, 2), out_norm=True), [192] * 2, [16] * 2),
])
def test_vit_layout_and_backward(kwargs, channels, strides):
    with torch.device('meta'):
        tiny = FANViT(arch='tiny', **kwargs)
    assert tiny.out_channels == channels and tiny.out_strides == strides
    torch.manual_seed(0)
    _forward_backward(FANViT(arch=SMALL_VIT, **kwargs).train())


def test_vit_pruning_follows_taps():
    with torch.device('meta'):
        early = FANViT(arch='tiny', mode='single_scale', block_indices=(1, 4))
        full = FANViT(arch='tiny')
    assert len(early.trunk.blocks) == 5 and len(early.trunk.cls_attn_blocks) == 0
    assert early.trunk.cls_token is None
    assert len(full.trunk.blocks) == 12 and len(full.trunk.cls_attn_blocks) == 2
    # mmengine's init_weights (no Pretrained) recurses into the pruned trunk
    pruned = FANViT(arch=SMALL_VIT, mode='single_scale', block_indices=(0,))
    pruned.init_weights()
    assert pruned.trunk.cls_token is None and len(pruned.trunk.blocks) == 1


def _class_token_path(key):
    """What only the class token reads (pruned, see FAN.prune_class_token): the official dense copies keep it."""
    return key == 'cls_token' or re.match(r'cls_attn_blocks\.\d+\.(attn\.|mlp\.|gamma2$)', key) is not None


@pytest.mark.parametrize('size', ['tiny', 'small', 'base', 'large'])
def test_hybrid_keys_equal_official_dense_copies(size):
    """Det layout = NVlabs detection backbone keys, seg layout = NVlabs segmentation keys (under trunk.), less
    the class token's path, which the backbone reports as unused when a checkpoint brings it."""
    det_name = {'tiny': 'tiny_8', 'small': 'small_12', 'base': 'base_12', 'large': 'large_12'}[size]
    seg_name = {'tiny': 'tiny_8', 'small': 'small_12', 'base': 'base_16', 'large': 'large_16'}[size]
    with torch.device('meta'):
        det = FANHybrid(arch=size, feat_downsample=True)
        seg = FANHybrid(arch=size, feat_downsample=False)
    for model, dump in ((det, f'fan_keys_det_fan_{det_name}_p4_hybrid.txt'),
                        (seg, f'fan_keys_seg_fan_{seg_name}_p4_hybrid.txt')):
        ours = {k.replace('trunk.', '', 1): tuple(v.shape) for k, v in model.state_dict().items()}
        official = {k: s for k, s, _ in read_keys(KEYS / dump)}
        assert ours == {k: s for k, s in official.items() if not _class_token_path(k)}, dump
        pruned = {k for k in official if _class_token_path(k)}
        assert {k.replace('trunk.', '', 1) for k in model._pruned_keys} >= pruned
        assert len(pruned) == 1 + 13 * 2  # cls token; q, k, v, proj, fc1, fc2 weights and biases, gamma2


def test_vit_single_scale_keys_equal_official_segmentation_copy():
    with torch.device('meta'):
        model = FANViT(arch='small', mode='single_scale')
    ours = {k.replace('trunk.', '', 1): tuple(v.shape) for k, v in model.state_dict().items()}
    official = read_keys(KEYS / 'fan_keys_seg_fan_small_12_p16_224.txt')
    assert ours == {k: s for k, s, _ in official if not _class_token_path(k)}


def test_large_hybrid_default_block_and_custom_arch():
    with torch.device('meta'):
        large = FANHybrid(arch='large')
        custom = FANHybrid(arch=dict(embed_dim=64, depth=2, num_heads=2))
    assert large.block_index == 18  # NVlabs: block 18 of 22
    assert custom.out_channels == [128, 256, 64, 768]
    with pytest.raises(ValueError, match='unknown keys'):
        FANHybrid(arch=dict(SMALL_HYBRID, widht=3))
    with pytest.raises(ValueError, match="arch='huge'"):
        FANHybrid(arch='huge')
    with pytest.raises(ValueError, match='frozen_stages=20'), torch.device('meta'):
        FANViT(arch='tiny', frozen_stages=20)


def test_frozen_stages_and_norm_eval():
    torch.manual_seed(0)
    model = FANHybrid(arch=dict(SMALL_HYBRID, depth=3), frozen_stages=2, norm_eval=True)
    model.train()
    t = model.trunk
    frozen = [t.patch_embed, t.pos_embed, t.blocks[0], t.blocks[1]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in t.blocks[2].parameters())
    assert all(p.requires_grad for p in model.learnable_downsample.parameters())
    assert not t.patch_embed.training and t.blocks[2].training
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)  # norm_eval, also in unfrozen blocks
    stats = [bn.running_mean.clone() for bn in bns]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(o.mean() for o in model(torch.randn(2, 3, H, W))).backward()
    opt.step()
    assert all(torch.equal(s, bn.running_mean) for s, bn in zip(stats, bns))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(('trunk.patch_embed.',
                                                                                 'trunk.blocks.0.')))
    assert not torch.equal(before['trunk.blocks.2.attn.q.weight'], after['trunk.blocks.2.attn.q.weight'])
    # without norm_eval BN trains
    model = FANViT(arch=SMALL_VIT, frozen_stages=-1).train()
    assert all(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize('cls, kwargs', [(FANHybrid, dict(arch=SMALL_HYBRID)), (FANViT, dict(arch=SMALL_VIT))])
def test_with_cp_same_output_and_grads(cls, kwargs):
    torch.manual_seed(0)
    plain = cls(**kwargs).train()
    ckpt = cls(with_cp=True, **kwargs).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, H, W)
    outs = []
    for model in (plain, ckpt):
        out = model(x)
        sum(o.square().mean() for o in out).backward()
        outs.append(out)
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=1e-5)
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('fan_dense')
    paths = {}
    for name in ('fan_tiny_12_p16_224', 'fan_tiny_8_p4_hybrid', 'fan_small_12_p4_hybrid'):
        paths[name] = root / f'{name}.pth.tar'
        torch.save({'state_dict': official_state_dict(GOLDEN / f'{name}.keys.txt')}, paths[name])
    return paths


def _capture_log(monkeypatch):
    lines = []
    monkeypatch.setattr(base_module, 'print_log', lambda msg, **kw: lines.append(msg))
    return lines


def test_hybrid_pretrained_features_equal_classification_taps(files, monkeypatch):
    """init_cfg Pretrained loads the official file; the seg-layout outputs are the golden taps."""
    log = _capture_log(monkeypatch)
    name = 'fan_tiny_8_p4_hybrid'
    model = FANHybrid(arch='tiny', feat_downsample=False,
                      init_cfg=dict(type='Pretrained', checkpoint=str(files[name])))
    model.init_weights()
    model.eval()
    meta, arrays = golden(name)
    with torch.no_grad():
        s0, s1, blk, last = model(golden_input(meta))
    assert tap_error(arrays, 'patch_embed.backbone.stages.0', s0) < TOL
    assert tap_error(arrays, 'patch_embed.backbone.stages.1', s1) < TOL
    assert tap_error(arrays, 'blocks.7', nchw_to_tokens(blk)) < TOL
    assert cls_free_error(arrays, 'cls_attn_blocks.1', nchw_to_tokens(last, with_cls=True)) < TOL
    msg = ' '.join(log)
    assert 'loaded' in msg and 'Not used by this backbone (expected' in msg
    assert 'trunk.head (2 tensors)' in msg and 'trunk.norm (2 tensors)' in msg
    assert 'trained from scratch' not in msg


def test_vit_pretrained_single_scale_taps_and_det_hybrid_log(files, monkeypatch):
    log = _capture_log(monkeypatch)
    name = 'fan_tiny_12_p16_224'
    model = FANViT(arch='tiny', mode='single_scale', block_indices=(4, 11, -1),
                   init_cfg=dict(type='Pretrained', checkpoint=str(files[name])))
    model.init_weights()
    model.eval()
    meta, arrays = golden(name)
    with torch.no_grad():
        b4, b11, last = model(golden_input(meta))
    assert tap_error(arrays, 'blocks.4', nchw_to_tokens(b4)) < TOL
    assert tap_error(arrays, 'blocks.11', nchw_to_tokens(b11)) < TOL
    assert cls_free_error(arrays, 'cls_attn_blocks.1', nchw_to_tokens(last, with_cls=True)) < TOL
    _init_on_meta(FANHybrid, files['fan_tiny_8_p4_hybrid'], arch='tiny')
    assert 'trained from scratch (expected' in log[-1] and 'learnable_downsample (2 tensors)' in log[-1]


def test_mm_style_checkpoints(files, tmp_path):
    """Files with backbone. keys: a trained fan_mm model, and NVlabs' own detection copy naming."""
    torch.manual_seed(0)
    src = FANHybrid(arch=SMALL_HYBRID)
    path = tmp_path / 'det.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in src.state_dict().items()},
                'meta': {}}, path)
    dst = FANHybrid(arch=SMALL_HYBRID, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    dst.init_weights()
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())
    official = {k.replace('trunk.', '', 1): v for k, v in src.state_dict().items()}
    path = tmp_path / 'nvlabs_det.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in official.items()}}, path)
    dst = FANHybrid(arch=SMALL_HYBRID, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    dst.init_weights()
    assert torch.equal(dst.learnable_downsample.weight, src.learnable_downsample.weight)
    # mmengine's prefix option
    dst = FANHybrid(arch=SMALL_HYBRID, init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.'))
    dst.init_weights()
    assert torch.equal(dst.trunk.blocks[1].gamma1, src.trunk.blocks[1].gamma1)


def _init_on_meta(cls, checkpoint, **kwargs):
    """Build on the meta device and run init_cfg: the file is read and checked, nothing is allocated."""
    with torch.device('meta'):
        cls(init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)), **kwargs).init_weights()


def test_wrong_checkpoints_raise(files, tmp_path):
    with pytest.raises(CheckpointError) as err:
        _init_on_meta(FANHybrid, files['fan_small_12_p4_hybrid'], arch='tiny')
    msg = str(err.value)
    assert 'does not fit FANHybrid (fan_tiny_8_p4_hybrid)' in msg and 'wrong shape' in msg
    assert 'looks like a fan_small_12_p4_hybrid checkpoint' in msg
    with pytest.raises(CheckpointError, match='looks like a fan_tiny_8_p4_hybrid checkpoint'):
        _init_on_meta(FANViT, files['fan_tiny_8_p4_hybrid'], arch='tiny')
    with pytest.raises(CheckpointError, match='not found'):
        _init_on_meta(FANViT, tmp_path / 'x.pth', arch='tiny')


def test_registered_in_mmdet_and_mmseg():
    pytest.importorskip('mmdet.models')
    pytest.importorskip('mmseg.models')
    from mmdet.registry import MODELS as DET
    from mmseg.registry import MODELS as SEG
    for registry in (DET, SEG):
        for cls in (FANHybrid, FANViT):
            assert registry.get(cls.__name__) is cls
    with torch.device('meta'):
        model = DET.build(dict(type='FANHybrid', arch='tiny', out_indices=(0, 1, 2, 3)))
    assert model.out_strides == [4, 8, 16, 32]


def test_simple_pyramid_is_vitdet():
    """x4: deconv-LN-GELU-deconv (C/4), x2: deconv (C/2), x1: identity, x0.5: 2x2 max pool; 1 or 4 inputs."""
    import torch.nn.functional as F
    from fan_mm.models.necks import SimplePyramid
    torch.manual_seed(0)
    pyr = SimplePyramid(32, out_norm=False)
    x = torch.randn(2, 32, 4, 6)
    p4, p8, p16, p32 = pyr([x])
    assert pyr.out_channels == [8, 16, 32, 32]
    assert torch.equal(p16, x) and torch.equal(p32, F.max_pool2d(x, 2))
    assert torch.allclose(p8, pyr.ops[1](x)) and p4.shape == (2, 8, 16, 24)
    a, b = torch.randn(2, 32, 4, 6), torch.randn(2, 32, 4, 6)
    outs = pyr([a, b, a, b])
    assert torch.equal(outs[2], a) and torch.equal(outs[3], F.max_pool2d(b, 2))
    normed = SimplePyramid(32, out_norm=True)([x])[2]
    assert torch.allclose(normed.mean(1), torch.zeros(2, 4, 6), atol=1e-5)
    with pytest.raises(ValueError, match='takes 1 or 4 maps'):
        pyr([a, b])


def test_mmseg_heads_consume_the_outputs():
    """SegFormer head on FANHybrid (seg layout), UPerNet on FANViT (pyramid), SETR-MLA on FANViT (same scale)."""
    pytest.importorskip('mmseg.models')
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmseg'):  # restored afterwards: no leak into other tests
        _build_and_run_mmseg_heads()


def _build_and_run_mmseg_heads():
    from mmseg.registry import MODELS as SEG
    torch.manual_seed(0)
    x = torch.randn(2, 3, H, W)
    norm_cfg = dict(type='BN', requires_grad=True)
    hybrid = SEG.build(dict(type='FANHybrid', arch=SMALL_HYBRID, feat_downsample=False))
    head = SEG.build(dict(type='SegformerHead', in_channels=hybrid.out_channels, in_index=[0, 1, 2, 3],
                          channels=32, num_classes=5, norm_cfg=norm_cfg))
    assert head(hybrid(x)).shape == (2, 5, H // 4, W // 4)
    vit = SEG.build(dict(type='FANViT', arch=SMALL_VIT))
    head = SEG.build(dict(type='UPerHead', in_channels=vit.out_channels, in_index=[0, 1, 2, 3],
                          channels=32, num_classes=5, norm_cfg=norm_cfg))
    assert head(vit(x)).shape == (2, 5, H // 4, W // 4)
    vit = SEG.build(dict(type='FANViT', arch=SMALL_VIT, mode='single_scale', block_indices=(0, 1, 2, -1)))
    neck = SEG.build(dict(type='MLANeck', in_channels=vit.out_channels, out_channels=16, norm_cfg=norm_cfg))
    head = SEG.build(dict(type='SETRMLAHead', in_channels=(16,) * 4, in_index=(0, 1, 2, 3), channels=32,
                          mla_channels=8, num_classes=5, norm_cfg=norm_cfg))
    assert head(neck(vit(x))).shape == (2, 5, H // 4, W // 4)
