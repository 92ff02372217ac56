"""LV-ViT: goldens of the official code, other sizes, checkpoint loading and its errors."""
import pytest
import timm
import torch
import torch.nn.functional as F

import fan_mm.models  # noqa: F401  (registers the models)
from fan_mm.models.checkpoint_utils import CheckpointError
from fan_mm.models.lvvit import LVVisionTransformer

from golden_official import load_golden, official_file, read_keys, tap_error

TOL = 1e-4


def _tiny(**kwargs):
    """A 2-block LV-ViT-T: cheap stand-in for checkpoint plumbing tests."""
    return timm.create_model('lvvit_t', depth=2, **kwargs)


@pytest.mark.parametrize('name', ['lvvit_t', 'lvvit_s', 'lvvit_m', 'lvvit_s_384'])
def test_golden(name):
    """Official weights file -> timm.create_model(pretrained=True): logits and every tap. lvvit_s_384 is
    LV-ViT-S built for 384 px (``img_size=384``, its own position embedding), run at 384 x 384."""
    path = official_file(name)
    data, meta, x = load_golden(name)
    model = timm.create_model(meta['model'], pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                              **meta.get('kwargs', {})).eval()
    taps = {}
    hooks = [model.get_submodule(tap).register_forward_hook(
        lambda mod, inp, out, tap=tap: taps.__setitem__(tap, out)) for tap in meta['taps']]
    with torch.no_grad():
        logits = model(x)
        final, inter = model.forward_intermediates(x, output_fmt='NLC',
                                                   return_prefix_tokens=True)
    for h in hooks:
        h.remove()
    assert logits.shape == data['logits'].shape
    assert (logits - torch.from_numpy(data['logits'])).abs().max() < TOL
    for tap, info in meta['taps'].items():
        assert list(taps[tap].shape) == info['shape'], tap
        assert tap_error(data, tap, taps[tap]) < TOL, tap
    # forward_intermediates gives exactly the block outputs (cls token split off)
    for i, (patch, cls) in enumerate(inter):
        assert torch.equal(torch.cat([cls, patch], 1), taps[f'blocks.{i}'])
    # the eval output is head(cls) + 0.5 * max over tokens of aux_head(tokens)
    manual = model.head(final[:, 0]) + 0.5 * model.aux_head(final[:, 1:]).max(1)[0]
    assert torch.allclose(manual, logits, atol=1e-5)


@pytest.mark.parametrize('name', ['lvvit_t', 'lvvit_s', 'lvvit_m'])
def test_state_dict_matches_official_keys(name):
    with torch.device('meta'):
        model = timm.create_model(name)
    ours = [(k, tuple(v.shape), str(v.dtype).replace('torch.', ''))
            for k, v in model.state_dict().items()]
    assert ours == read_keys(name)  # names, shapes, dtypes and order


@pytest.mark.parametrize('name,params,entries', [
    ('lvvit_m', 55_830_544, 248), ('lvvit_l', 150_021_968, 292),
    ('lvvit_s_384', 26_297_744, 204), ('lvvit_m_448', 56_131_600, 248),
    ('lvvit_l_512', 150_657_872, 292)])
def test_other_sizes_build(name, params, entries):
    """Parameter / entry counts verified on the official code (reference notes)."""
    with torch.device('meta'):
        model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == entries


def test_large_stem_and_scaling():
    with torch.device('meta'):
        model = timm.create_model('lvvit_l')
    assert model.patch_embed.conv1.out_channels == 128
    assert all(blk.skip_lam == 3.0 for blk in model.blocks)
    assert model.blocks[0].attn.qkv.bias is None and model.blocks[0].attn.proj.bias is not None


def test_any_input_size_and_intermediates():
    model = _tiny().eval()
    x = torch.randn(2, 3, 96, 160)  # non-square, not the built size
    with torch.no_grad():
        out = model(x)
        feats = model.forward_intermediates(x, indices=[0, 1], intermediates_only=True)
    assert out.shape == (2, 1000)
    assert [tuple(f.shape) for f in feats] == [(2, 240, 6, 10)] * 2
    # features_only goes through forward_intermediates
    fmodel = _tiny(features_only=True, out_indices=(1,)).eval()
    with torch.no_grad():
        assert tuple(fmodel(x)[0].shape) == (2, 240, 6, 10)


def _resized(pos_embed, old, new):
    """The official resize: cls entry kept, grid bicubic (align_corners=False, no antialias)."""
    grid = pos_embed[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new, new), mode='bicubic', align_corners=False)
    return torch.cat([pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], 1)


def test_pos_embed_resized_on_load(tmp_path):
    """A 384 checkpoint (24 x 24 grid) loads into models built for 224 and 320."""
    src = _tiny(img_size=384)
    path = tmp_path / 'lvvit_t_384.pth'
    torch.save({'state_dict': src.state_dict()}, path)
    for size, grid in ((224, 14), (320, 20)):
        model = _tiny(img_size=size, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        assert torch.allclose(model.pos_embed, _resized(src.pos_embed, 24, grid), atol=1e-6)


def test_pos_embed_resized_at_run_time():
    """A 224 model run at 320 x 320 equals a 320 model with the resized embedding."""
    model = _tiny().eval()
    ref = _tiny(img_size=320).eval()
    sd = model.state_dict()
    ref.load_state_dict({**sd, 'pos_embed': _resized(sd['pos_embed'], 14, 20)})
    x = torch.randn(1, 3, 320, 320)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)


def test_training_forward_mixtoken_full_box(monkeypatch):
    """MixToken with a box over the whole grid: the mixed batch is the flipped batch, so the
    cls logits come out flipped while the aux logits are swapped back to their own images."""
    model = _tiny().train()
    x = torch.randn(2, 3, 64, 64)  # 4 x 4 tokens
    monkeypatch.setattr('fan_mm.models.lvvit.sample_token_box', lambda grid, beta: (0, 0, 4, 4))
    cls_mix, aux_mix, box = model(x)
    assert box == (0, 0, 4, 4)
    model.mix_token = False
    cls_ref, aux_ref, box_ref = model(x)
    assert box_ref == (0, 0, 0, 0)
    assert torch.allclose(cls_mix, cls_ref.flip(0), atol=1e-5)
    assert torch.allclose(aux_mix, aux_ref, atol=1e-5)


def test_training_forward_mixtoken_same_images():
    """Mixing a sample with an identical partner changes nothing, whatever the box."""
    torch.manual_seed(0)
    model = _tiny().train()
    x = torch.randn(1, 3, 64, 64).expand(2, -1, -1, -1)
    cls_mix, aux_mix, box = model(x)
    r1, c1, r2, c2 = box
    assert 0 <= r1 <= r2 <= 4 and 0 <= c1 <= c2 <= 4
    model.mix_token = False
    cls_ref, aux_ref, _ = model(x)
    assert torch.allclose(cls_mix, cls_ref, atol=1e-5) and torch.allclose(aux_mix, aux_ref, atol=1e-5)


def test_mixtoken_needs_dense_output():
    with pytest.raises(ValueError, match='return_dense'):
        LVVisionTransformer(depth=1, return_dense=False, mix_token=True)


# ------------------------------------------------------------------------------------------
# checkpoint files
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize('wrap', ['flat', 'state_dict', 'state_dict_ema', 'model', 'module'])
def test_checkpoint_round_trip(wrap, tmp_path):
    src = _tiny().eval()
    sd = src.state_dict()
    payload = {'flat': sd, 'state_dict': {'state_dict': sd, 'epoch': 3},
               'state_dict_ema': {'state_dict_ema': sd, 'state_dict': {}},
               'model': {'model': sd}, 'module': {'module.' + k: v for k, v in sd.items()}}[wrap]
    path = tmp_path / 'ckpt.pth'
    torch.save(payload, path)
    model = _tiny(pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))


def test_other_class_count_keeps_new_heads(tmp_path):
    src = _tiny()
    path = tmp_path / 'ckpt.pth'
    torch.save(src.state_dict(), path)
    model = _tiny(num_classes=10, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.weight.shape == (10, 240) and model.aux_head.weight.shape == (10, 240)
    assert torch.equal(model.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)


def test_error_truncated_file(tmp_path):
    path = tmp_path / 'broken.pth'
    torch.save(_tiny().state_dict(), path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=r'broken\.pth.*truncated'):
        _tiny(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_error_missing_file_and_no_file(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        _tiny(pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'nope.pth')))
    with pytest.raises(CheckpointError, match=r"pretrained_cfg_overlay.*lvvit_t\.pth"):
        timm.create_model('lvvit_t', pretrained=True)


def test_error_other_variant_names_it(tmp_path):
    path = tmp_path / 't.pth'
    with torch.device('meta'):
        shapes = timm.create_model('lvvit_t').state_dict()
    torch.save({k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}, path)
    with pytest.raises(CheckpointError) as err:
        timm.create_model('lvvit_s', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    msg = str(err.value)
    assert 't.pth does not fit lvvit_s' in msg and 'wrong shape' in msg
    assert 'looks like a lvvit_t checkpoint' in msg


def test_error_other_family_names_it(tmp_path):
    path = tmp_path / 'fan.pth'
    torch.save(timm.create_model('fan_tiny_12_p16_224').state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        _tiny(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    msg = str(err.value)
    assert 'not in the file' in msg and 'no place in the model' in msg
    assert 'looks like a fan_tiny_12_p16_224 checkpoint' in msg
