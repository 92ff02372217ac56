"""FAN-Swin: golden of the official code, buffers, other sizes, any input size, checkpoints."""
import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F

import fan_mm.models  # noqa: F401  (registers the models)
from fan_mm.models.checkpoint_utils import CheckpointError
from fan_mm.models.fan_swin import FANSwinBlock, shifted_window_mask

from golden_official import GOLDEN_DIR, load_golden, official_file, read_keys, tap_error

NAME = 'fan_swin_tiny_patch4_window7_224'
TOL = 1e-4
# a small FAN-Swin (same code paths, cheap to build and run)
SMALL = dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4))


def _small(name=NAME, **kwargs):
    return timm.create_model(name, **dict(SMALL, **kwargs))


@pytest.fixture(scope='module')
def official_path():
    return official_file(NAME)


@pytest.mark.parametrize('name', [NAME, 'fan_swin_small_patch4_window7_224'])
def test_golden(name):
    """Official-format file -> timm.create_model(pretrained=True): logits, stage taps, buffers."""
    model = timm.create_model(name, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(official_file(name)))).eval()
    data, meta, x = load_golden(name)
    taps = {}
    hooks = [model.get_submodule(tap).register_forward_hook(
        lambda mod, inp, out, tap=tap: taps.__setitem__(tap, out)) for tap in meta['taps']]
    with torch.no_grad():
        logits = model(x)
        inter = model.forward_intermediates(x, intermediates_only=True)
    for h in hooks:
        h.remove()
    assert (logits - torch.from_numpy(data['logits'])).abs().max() < TOL
    for tap, info in meta['taps'].items():
        out = taps[tap].reshape(taps[tap].shape[0], -1, taps[tap].shape[-1])  # NHWC -> NLC
        assert list(out.shape) == info['shape'], tap
        assert tap_error(data, tap, out) < TOL, tap
    # forward_intermediates: the pyramid before each merging (the last equals layers.3)
    assert [tuple(f.shape) for f in inter] == [(2, 96, 56, 56), (2, 192, 28, 28),
                                               (2, 384, 14, 14), (2, 768, 7, 7)]
    assert torch.equal(inter[3], taps['layers.3'].permute(0, 3, 1, 2))
    # the buffers the model builds are the official ones
    buffers = np.load(GOLDEN_DIR / f'{name}.buffers.npz')
    own = model.state_dict()
    for key in buffers.files:
        assert torch.equal(own[key], torch.from_numpy(buffers[key])), key


def test_state_dict_matches_official_keys():
    with torch.device('meta'):
        model = timm.create_model(NAME)
    ours = [(k, tuple(v.shape), str(v.dtype).replace('torch.', ''))
            for k, v in model.state_dict().items()]
    assert ours == read_keys(NAME)  # names, shapes, dtypes and order


@pytest.mark.parametrize('name,params', [
    ('fan_swin_small_patch4_window7_224', 53_064_220),
    ('fan_swin_base_patch4_window7_224', 93_599_448),
    ('fan_swin_large_patch4_window7_224', 208_941_136)])
def test_other_sizes_build(name, params):
    """Parameter / entry counts of the official models (reference key dumps)."""
    with torch.device('meta'):
        model = timm.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == 694
    assert [type(s.blocks[0].mlp).__name__ for s in model.layers] == \
        ['SwinChannelProcessing'] * 3 + ['Mlp']


def test_window_rules():
    """Official classifier: the 7x7 last stage at 224 is one unshifted window; dense mode
    keeps window 7 and shifts; masks only where shifted, stored only in official mode."""
    with torch.device('meta'):
        cls_model = timm.create_model(NAME)
        dense = timm.create_model(NAME, always_partition=True)
    last = cls_model.layers[3].blocks[1]
    assert (last.window_size, last.shift_size, last.attn_mask) == (7, 0, None)
    assert (dense.layers[3].blocks[1].window_size, dense.layers[3].blocks[1].shift_size) == (7, 3)
    assert not any(k.endswith('attn_mask') for k in dense.state_dict())
    assert sum(k.endswith('attn_mask') for k in cls_model.state_dict()) == 5


def test_shifted_window_mask_by_hand():
    """4x4 map, window 2, shift 1: window (0,0) holds one region, the last window four."""
    mask = shifted_window_mask(4, 4, 2, 1)
    assert mask.shape == (4, 4, 4)
    assert torch.equal(mask[0], torch.zeros(4, 4))
    # last window covers pixels (2,2) (2,3) (3,2) (3,3) of regions 4, 5, 7, 8: all different
    assert torch.equal(mask[3], torch.full((4, 4), -100.).fill_diagonal_(0))
    # window (0,1): columns 2,3 of rows 0,1 -> regions 1, 2 (cols), same row region
    assert torch.equal(mask[1] == 0, torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1],
                                                   [1, 0, 1, 0], [0, 1, 0, 1]], dtype=torch.bool))


def test_any_input_size():
    model = _small(always_partition=True).eval()
    x = torch.randn(1, 3, 100, 150)  # not a multiple of 4 nor of the windows
    with torch.no_grad():
        feats = model.forward_intermediates(x, intermediates_only=True)
        logits = model(x)
    assert [tuple(f.shape[2:]) for f in feats] == [(25, 38), (13, 19), (7, 10), (4, 5)]
    assert [f.shape[1] for f in feats] == [24, 48, 96, 192]
    assert logits.shape == (1, 1000)
    fmodel = _small(always_partition=True, features_only=True, out_indices=(1, 3)).eval()
    with torch.no_grad():
        assert [tuple(f.shape) for f in fmodel(x)] == [(1, 48, 13, 19), (1, 192, 4, 5)]


def test_masks_built_at_run_time_equal_stored_ones():
    """A model built for 224 run at 288 equals one built for 288 (stored masks)."""
    at_224 = _small(always_partition=True).eval()
    at_288 = _small(always_partition=True, img_size=288).eval()
    at_288.load_state_dict(at_224.state_dict())
    x = torch.randn(1, 3, 288, 288)
    with torch.no_grad():
        assert torch.allclose(at_224(x), at_288(x), atol=1e-5)


def test_padding_matches_explicit_windows():
    """An 9 x 11 map is zero-padded (after norm1, bottom / right) to 14 x 14 windows, as
    mmdet's Swin: each window's output equals attention on that window alone."""
    torch.manual_seed(0)
    block = FANSwinBlock(24, (14, 14), num_heads=2, window_size=7, shift_size=0,
                         channel_processing=False).eval()  # per-token MLP: windows independent
    x = torch.randn(1, 9, 11, 24)
    with torch.no_grad():
        out = block(x)
        assert out.shape == x.shape
        assert torch.allclose(out[:, :7, :7], block(x[:, :7, :7].contiguous()), atol=1e-5)
        part = x[:, 7:9, :7]  # bottom-left window: 2 real rows + 5 padded rows
        win = F.pad(block.norm1(part), (0, 0, 0, 0, 0, 5)).reshape(1, 49, 24)
        y = part + block.attn(win).reshape(1, 7, 7, 24)[:, :2]
        y = y + block.mlp(block.norm2(y))
        assert torch.allclose(out[:, 7:9, :7], y, atol=1e-5)


# ------------------------------------------------------------------------------------------
# checkpoint files
# ------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_dense_mode(tmp_path):
    src = _small().eval()
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict_ema': src.state_dict()}, path)
    model = _small(pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))
    # the dense mode does not store masks: those in the file are dropped, the rest loads
    dense = _small(always_partition=True, pretrained=True,
                   pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(dense.layers[2].blocks[1].mlp.q.weight, src.layers[2].blocks[1].mlp.q.weight)


def test_checkpoint_without_buffers_loads(tmp_path):
    src = _small()
    sd = {k: v for k, v in src.state_dict().items()
          if not k.endswith(('attn_mask', 'relative_position_index', 'num_batches_tracked'))}
    path = tmp_path / 'ckpt.pth'
    torch.save(sd, path)
    model = _small(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(model.layers[0].blocks[1].attn_mask, src.layers[0].blocks[1].attn_mask)


def test_error_wrong_relative_position_index(tmp_path):
    sd = _small().state_dict()
    key = 'layers.0.blocks.0.attn.relative_position_index'
    sd[key] = sd[key].flip(0)
    path = tmp_path / 'ckpt.pth'
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match='relative_position_index differs'):
        _small(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_error_other_variant_names_it(official_path):
    with pytest.raises(CheckpointError) as err:
        _small('fan_swin_small_patch4_window7_224', pretrained=True,
               pretrained_cfg_overlay=dict(file=str(official_path)))
    msg = str(err.value)
    assert 'does not fit fan_swin_small_patch4_window7_224' in msg and 'wrong shape' in msg
    assert f'looks like a {NAME} checkpoint' in msg


def test_error_other_family_and_truncated(official_path, tmp_path):
    with pytest.raises(CheckpointError) as err:
        timm.create_model('lvvit_t', depth=2, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(official_path)))
    assert f'looks like a {NAME} checkpoint' in str(err.value)
    broken = tmp_path / 'broken.pth'
    broken.write_bytes(official_path.read_bytes()[:100_000])
    with pytest.raises(CheckpointError, match='truncated'):
        _small(pretrained=True, pretrained_cfg_overlay=dict(file=str(broken)))
