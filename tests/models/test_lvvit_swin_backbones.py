"""Dense backbones LVViT and FANSwin: strides / channels at non-square inputs, backward,
pretrained loading through init_cfg, wrong checkpoints, freezing, registration, conversion."""
import pytest
import torch

pytest.importorskip('mmengine')
pytest.importorskip('mmcv')

import fan_mm.models  # noqa: E402,F401
from fan_mm.models.backbones import FANSwin, LVViT  # noqa: E402
from fan_mm.models.checkpoint_utils import CheckpointError  # noqa: E402

from golden_official import load_golden, official_file, tap_error  # noqa: E402

SMALL_LV = dict(embed_dim=48, depth=4, num_heads=2, skip_lam=2.0, stem_chs=16)
SMALL_SWIN = dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4))
SWIN_T = 'fan_swin_tiny_patch4_window7_224'


@pytest.fixture(scope='module')
def files():
    return {name: official_file(name, wrap='state_dict') for name in ('lvvit_t', SWIN_T)}


def _check_pyramid(backbone, x):
    outs = backbone(x)
    assert len(outs) == len(backbone.out_channels) == len(backbone.out_strides)
    for out, channels, stride in zip(outs, backbone.out_channels, backbone.out_strides):
        assert out.shape[:2] == (x.shape[0], channels)
        assert tuple(out.shape[2:]) == (-(-x.shape[2] // stride), -(-x.shape[3] // stride))
    sum(o.float().pow(2).mean() for o in outs).backward()
    return outs


def test_registered_in_mmdet_and_mmseg():
    det = pytest.importorskip('mmdet.registry')
    seg = pytest.importorskip('mmseg.registry')
    for cls in (LVViT, FANSwin):
        assert det.MODELS.module_dict[cls.__name__] is cls
        assert seg.MODELS.module_dict[cls.__name__] is cls


def test_lvvit_side_layers_non_square():
    backbone = LVViT(arch=SMALL_LV, out_indices=(0, 1, 2, 3), out_channels=64,
                     drop_path_rate=0.1).train()
    assert backbone.out_strides == (4, 8, 16, 16) and backbone.out_channels == (48, 48, 48, 64)
    _check_pyramid(backbone, torch.randn(2, 3, 96, 160))
    assert backbone.trunk.blocks[0].attn.qkv.weight.grad is not None
    assert backbone.side_layer4[0].weight.grad is not None


def test_lvvit_plain_taps_and_pruning():
    backbone = LVViT(arch=SMALL_LV, out_indices=(1, 2), side_layers=False)
    assert len(backbone.trunk.blocks) == 3  # blocks after the last tap are not kept
    assert backbone.out_strides == (16, 16)
    _check_pyramid(backbone, torch.randn(1, 3, 64, 112))
    with pytest.raises(ValueError, match='4 tapped blocks'):
        LVViT(arch=SMALL_LV, out_indices=(1, 2))
    with pytest.raises(ValueError, match='arch'):
        LVViT(arch='xl')


def test_official_archs_declared():
    with torch.device('meta'):
        s = LVViT(arch='small')
        l448 = LVViT(arch='lvvit_l_448')
        swin_b = FANSwin(arch='base')
    assert s.out_indices == (6, 9, 12, 15) and s.out_channels == (384, 384, 384, 2048)
    assert l448.out_indices == (14, 17, 20, 23) and l448.trunk.grid_size == (28, 28)
    assert swin_b.out_channels == (128, 256, 512, 1024) and swin_b.out_strides == (4, 8, 16, 32)


def test_fan_swin_non_square_any_size():
    backbone = FANSwin(arch=SMALL_SWIN, drop_path_rate=0.1).train()
    assert backbone.out_strides == (4, 8, 16, 32) and backbone.out_channels == (24, 48, 96, 192)
    _check_pyramid(backbone, torch.randn(2, 3, 100, 150))  # not a multiple of 4 nor 7
    assert backbone.trunk.layers[3].blocks[1].mlp.fc1.weight.grad is not None
    partial = FANSwin(arch=SMALL_SWIN, out_indices=(1, 2))
    assert len(partial.trunk.layers) == 3 and partial.trunk.layers[2].downsample is None
    _check_pyramid(partial, torch.randn(1, 3, 64, 96))


def _hooked(model, names):
    outs = {}
    for name in names:
        model.get_submodule(name).register_forward_hook(
            lambda mod, inp, out, name=name: outs.__setitem__(name, out))
    return outs


def test_init_cfg_loads_official_lvvit(files):
    """init_cfg Pretrained: the trunk computes the official blocks (golden taps)."""
    backbone = LVViT(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(files['lvvit_t'])))
    backbone.init_weights()
    backbone.eval()
    data, meta, x = load_golden('lvvit_t')
    taps = _hooked(backbone, [f'trunk.blocks.{i}' for i in backbone.out_indices])
    with torch.no_grad():
        outs = backbone(x)
    assert [tuple(o.shape) for o in outs] == [(2, 240, 56, 56), (2, 240, 28, 28),
                                              (2, 240, 14, 14), (2, 2048, 14, 14)]
    for i in backbone.out_indices:
        assert tap_error(data, f'blocks.{i}', taps[f'trunk.blocks.{i}']) < 1e-4


def test_shifted_window_attention_pads_like_mmdet_swin():
    """On a map that is no multiple of the window, a shifted FAN-Swin window attention
    equals mmdet's ``ShiftWindowMSA`` (pad bottom / right, shift, mask, crop)."""
    swin = pytest.importorskip('mmdet.models.backbones.swin')
    from fan_mm.models.fan_swin import FANSwinBlock
    torch.manual_seed(0)
    block = FANSwinBlock(24, (14, 14), num_heads=2, window_size=7, shift_size=3).eval()
    ref = swin.ShiftWindowMSA(24, 2, 7, shift_size=3).eval()
    weights = {k: v for k, v in block.attn.state_dict().items() if 'index' not in k}
    assert not ref.w_msa.load_state_dict(weights, strict=False).unexpected_keys
    x = torch.randn(2, 9, 11, 24)
    with torch.no_grad():
        expected = ref(x.reshape(2, 99, 24), (9, 11)).reshape(2, 9, 11, 24)
        assert torch.allclose(block._attn(x), expected, atol=1e-5)


def test_init_cfg_loads_official_fan_swin(files):
    """init_cfg Pretrained: stages 0-2 (same windows and shifts as the classifier at 224)
    compute the official ones (golden taps after each merging); outputs get fresh norms."""
    backbone = FANSwin(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(files[SWIN_T])))
    backbone.init_weights()
    backbone.eval()
    data, meta, x = load_golden(SWIN_T)
    names = [f'trunk.layers.{i}.downsample' for i in range(3)]
    taps = _hooked(backbone, names)
    with torch.no_grad():
        outs = backbone(x)
    for i, name in enumerate(names):
        tap = taps[name].reshape(2, -1, taps[name].shape[-1])
        assert tap_error(data, f'layers.{i}', tap) < 1e-4
    assert [tuple(o.shape) for o in outs] == [(2, 96, 56, 56), (2, 192, 28, 28),
                                              (2, 384, 14, 14), (2, 768, 7, 7)]
    # each output is LayerNorm-ed over channels (fresh norms: unit weight, zero bias)
    assert torch.allclose(outs[0].mean(1), torch.zeros(2, 56, 56), atol=1e-4)


def test_wrong_checkpoints_named(files, tmp_path):
    with torch.device('meta'):
        lv_s = LVViT(arch='small')
        swin_s = FANSwin(arch='small')
    with pytest.raises(CheckpointError, match='looks like a lvvit_t checkpoint'):
        lv_s.load_pretrained(str(files['lvvit_t']))
    with pytest.raises(CheckpointError, match=f'looks like a {SWIN_T} checkpoint'):
        swin_s.load_pretrained(str(files[SWIN_T]))
    with pytest.raises(CheckpointError, match=f'LVViT.*looks like a {SWIN_T} checkpoint'):
        lv_s.load_pretrained(str(files[SWIN_T]))
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(files['lvvit_t'].read_bytes()[:4096])
    with pytest.raises(CheckpointError, match='truncated'):
        lv_s.load_pretrained(str(broken))


def test_frozen_stages_and_norm_eval():
    lv = LVViT(arch=SMALL_LV, out_indices=(0, 1, 2, 3), frozen_stages=2, norm_eval=True).train()
    assert not lv.trunk.pos_embed.requires_grad and not lv.trunk.cls_token.requires_grad
    assert not any(p.requires_grad for p in lv.trunk.patch_embed.parameters())
    assert not any(p.requires_grad for p in lv.trunk.blocks[1].parameters())
    assert all(p.requires_grad for p in lv.trunk.blocks[2].parameters())
    assert not lv.trunk.patch_embed.bn1.training and not lv.side_layer1[1].training
    assert lv.side_layer1[0].weight.requires_grad

    swin = FANSwin(arch=SMALL_SWIN, frozen_stages=2).train()
    frozen = [swin.trunk.patch_embed, swin.trunk.layers[0], swin.trunk.layers[1], swin.norm0,
              swin.norm1]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in swin.trunk.layers[2].parameters())
    assert not swin.trunk.layers[1].blocks[0].mlp.mlp_v.dwconv.bn.training
    assert swin.trunk.layers[2].blocks[0].mlp.mlp_v.dwconv.bn.training


def test_with_cp_same_gradients():
    torch.manual_seed(0)
    ref = FANSwin(arch=SMALL_SWIN)
    cp = FANSwin(arch=SMALL_SWIN, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for m in (ref, cp):
        m.eval()
        sum(o.sum() for o in m(x)).backward()
    w = 'trunk.layers.0.blocks.0.attn.qkv.weight'
    assert torch.allclose(dict(ref.named_parameters())[w].grad,
                          dict(cp.named_parameters())[w].grad, atol=1e-5)


def test_convert_checkpoint_for_load_from(files, tmp_path):
    from fan_mm.models.convert import convert_checkpoint
    dst = tmp_path / 'mm' / 'lvvit_t_mm.pth'
    meta = convert_checkpoint(str(files['lvvit_t']), str(dst), family='lvvit', codebase='mmseg')
    assert meta['model'] == 'lvvit_t' and meta['backbone'] == 'LVViT'
    state_dict = torch.load(dst, map_location='cpu')['state_dict']
    backbone = LVViT(arch='tiny')
    result = backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state_dict.items()},
                                      strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith('side_layer') for k in result.missing_keys)
    # FAN-Swin, model named (no identification): masks are dropped, the output norms are new
    dst = tmp_path / 'mm' / 'fan_swin_t_mm.pth'
    meta = convert_checkpoint(str(files[SWIN_T]), str(dst), model=SWIN_T, codebase='mmdet')
    assert meta['backbone'] == 'FANSwin'
    state_dict = torch.load(dst, map_location='cpu')['state_dict']
    assert not any(k.endswith('attn_mask') for k in state_dict)
    with torch.device('meta'):
        backbone = FANSwin(arch='tiny')
    result = backbone.load_state_dict({k[len('backbone.'):]: v for k, v in state_dict.items()},
                                      strict=False, assign=True)
    assert not result.unexpected_keys
    assert sorted(result.missing_keys) == sorted(f'norm{i}.{p}' for i in range(4)
                                                 for p in ('weight', 'bias'))

