"""FAN-ViT / FAN-Hybrid beyond the goldens: all sizes, other inputs, checkpoint containers and errors."""
from unittest import mock

import pytest
import timm
import torch

import fan_mm.models  # noqa: F401
from fan_mm.models.checkpoint_utils import CheckpointError
from fan_mm.models.fan import FAN, checkpoint_filter_fn
from fan_test_utils import GOLDEN, KEYS, header_value, official_state_dict, read_keys

VIT = ['fan_tiny_12_p16_224', 'fan_small_12_p16_224', 'fan_base_18_p16_224', 'fan_large_24_p16_224']
HYBRID = ['fan_tiny_8_p4_hybrid', 'fan_small_12_p4_hybrid', 'fan_base_16_p4_hybrid', 'fan_large_16_p4_hybrid']
# FAN blocks and ConvNeXt stage-1 depth of each variant (the names do not say: small hybrid has 10, large 22)
DEPTH = {'fan_tiny_12_p16_224': 12, 'fan_small_12_p16_224': 12, 'fan_base_18_p16_224': 18,
         'fan_large_24_p16_224': 24, 'fan_tiny_8_p4_hybrid': 8, 'fan_small_12_p4_hybrid': 10,
         'fan_base_16_p4_hybrid': 16, 'fan_large_16_p4_hybrid': 22}


def _meta_model(name, **kwargs):
    with torch.device('meta'):
        return timm.create_model(name, **kwargs)


@pytest.mark.parametrize('name', VIT + HYBRID)
def test_state_dict_equals_official_dump(name):
    """Every key, shape and the parameter count equal the official model's (dumped from NVlabs/FAN)."""
    dump = KEYS / f'fan_keys_{name}.txt'
    model = _meta_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    official = {k: shape for k, shape, _ in read_keys(dump)}
    assert ours == official
    assert sum(p.numel() for p in model.parameters()) == header_value(dump, 'num_parameters')
    assert len(model.blocks) == DEPTH[name]


def _quick_model(name):
    """A real CPU model without the official (slow, trunc-normal) init: PyTorch's default init is enough here."""
    with mock.patch.object(FAN, 'init_weights', lambda self, *args, **kwargs: None):
        torch.manual_seed(0)
        return timm.create_model(name).eval()


@pytest.mark.parametrize('name', VIT[2:] + HYBRID[2:])
def test_big_variants_run_non_square(name):
    """Base / large compute at a small non-square input (tiny / small: the goldens, 160 x 224)."""
    model = _quick_model(name)
    hybrid = 'hybrid' in name
    x = torch.randn(2, 3, 64, 96)  # multiples of 32; tokens 4 x 6
    with torch.no_grad():
        final, feats = model.forward_intermediates(x, indices=[0, -1], stem_indices=[0, 1] if hybrid else None)
        logits = model.forward_head(final)
        nlc = model.forward_intermediates(x, indices=1, output_fmt='NLC', intermediates_only=True)
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()
    assert (logits[0] - logits[1]).abs().max() > 0
    C = model.embed_dim
    expect = ([(2, 128, 16, 24), (2, 256, 8, 12)] if hybrid else []) + [(2, C, 4, 6)] * 2
    assert [tuple(f.shape) for f in feats] == expect
    assert torch.equal(nlc[0], feats[-1].flatten(2).transpose(1, 2))


def test_any_input_size_and_batch_consistency():
    """Sizes that are multiples of 16 (ViT) work, and a sample's output does not depend on its batch."""
    model = _quick_model('fan_tiny_12_p16_224')
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    assert torch.allclose(both[1:], one, atol=1e-5)


def test_filter_accepts_every_container():
    """Flat, state_dict / state_dict_ema / model containers, module. prefix, fused class-attention qkv."""
    sd = official_state_dict(GOLDEN / 'fan_tiny_12_p16_224.keys.txt')
    fused = dict(sd)
    for i in range(2):
        for kind in ('weight', 'bias'):
            fused[f'cls_attn_blocks.{i}.attn.qkv.{kind}'] = torch.cat(
                [fused.pop(f'cls_attn_blocks.{i}.attn.{n}.{kind}') for n in 'qkv'])
    module = {'module.' + k: v for k, v in sd.items()}
    det_copy = {k: v for k, v in sd.items() if not k.startswith(('head.', 'norm.'))}
    det_copy['learnable_downsample.weight'] = torch.zeros(768, 192, 3, 3)
    cases = [sd, {'state_dict': sd, 'epoch': 3}, {'state_dict_ema': sd, 'state_dict': {}},
             {'model': module, 'args': None}, module, fused]
    for case in cases:
        out = checkpoint_filter_fn(case, None)
        assert out.keys() == sd.keys() and all(torch.equal(out[k], sd[k]) for k in sd)
    out = checkpoint_filter_fn(det_copy, None)  # dense-only layer dropped, nothing else touched
    assert out.keys() == det_copy.keys() - {'learnable_downsample.weight'}


def test_round_trip_through_create_model(tmp_path):
    torch.manual_seed(0)
    src = timm.create_model('fan_tiny_8_p4_hybrid')
    path = tmp_path / 'ema.pth.tar'
    torch.save({'state_dict_ema': {'module.' + k: v for k, v in src.state_dict().items()}, 'epoch': 1}, path)
    model = timm.create_model('fan_tiny_8_p4_hybrid', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    # another class count: everything but the head loads
    model = timm.create_model('fan_tiny_8_p4_hybrid', pretrained=True, num_classes=10,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.weight.shape == (10, 192)
    assert torch.equal(model.blocks[3].mlp.q.weight, src.blocks[3].mlp.q.weight)
    # 22k / 384 pretrained tags share the architecture
    assert timm.models.get_pretrained_cfg('fan_base_16_p4_hybrid.in22k_ft_in1k_384').input_size == (3, 384, 384)


def _load(name, path):
    # on the meta device: the file is read and checked, nothing is initialised or copied
    with torch.device('meta'):
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('fan_ckpt')
    paths = {}
    for name in ('fan_small_12_p16_224', 'fan_tiny_8_p4_hybrid', 'lvvit_t'):
        paths[name] = root / f'{name}.pth'
        torch.save(official_state_dict(GOLDEN / f'{name}.keys.txt'), paths[name])
    seg = official_state_dict(KEYS / 'fan_keys_seg_fan_small_12_p16_224.txt')
    paths['seg'] = root / 'seg.pth'
    torch.save(seg, paths['seg'])
    data = paths['fan_small_12_p16_224'].read_bytes()
    paths['truncated'] = root / 'truncated.pth'
    paths['truncated'].write_bytes(data[:len(data) // 2])
    return paths


def test_error_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match='not found.*nope.pth'):
        _load('fan_tiny_12_p16_224', tmp_path / 'nope.pth')


def test_error_truncated_file(files):
    with pytest.raises(CheckpointError, match='truncated.pth.*truncated or not a PyTorch checkpoint'):
        _load('fan_small_12_p16_224', files['truncated'])


def test_error_other_variant(files):
    with pytest.raises(CheckpointError) as err:
        _load('fan_tiny_12_p16_224', files['fan_small_12_p16_224'])
    msg = str(err.value)
    assert 'does not fit fan_tiny_12_p16_224' in msg and 'wrong shape' in msg
    assert 'looks like a fan_small_12_p16_224 checkpoint' in msg


def test_error_other_family(files):
    with pytest.raises(CheckpointError) as err:
        _load('fan_tiny_12_p16_224', files['fan_tiny_8_p4_hybrid'])
    assert 'looks like a fan_tiny_8_p4_hybrid checkpoint' in str(err.value)
    with pytest.raises(CheckpointError) as err:
        _load('fan_tiny_12_p16_224', files['lvvit_t'])
    msg = str(err.value)
    assert 'weights the model needs are not in the file' in msg and 'have no place in the model' in msg
    # LV-ViT is registered only where its family is merged in
    assert 'looks like a lvvit_t checkpoint' in msg or 'does not look like any known variant' in msg


def test_error_dense_copy_into_classifier(files):
    with pytest.raises(CheckpointError, match='no classifier.*dense-prediction backbone checkpoint'):
        _load('fan_small_12_p16_224', files['seg'])


def test_fused_attention_equals_explicit_math():
    """SDPA in TokenMixing / ClassAttn equals the official explicit softmax((q * d^-0.5) @ k^T) @ v."""
    from fan_mm.models.fan import ClassAttn, TokenMixing
    torch.manual_seed(0)
    x = torch.randn(2, 35, 64)
    tm = TokenMixing(64, num_heads=4, qkv_bias=True).eval()
    q = tm.q(x).reshape(2, 35, 4, 16).permute(0, 2, 1, 3)
    k, v = tm.kv(x).reshape(2, 35, 2, 4, 16).permute(2, 0, 3, 1, 4)
    ref = tm.proj(((q * 16 ** -0.5) @ k.transpose(-2, -1)).softmax(-1).matmul(v).transpose(1, 2).reshape(2, 35, 64))
    assert (tm(x) - ref).abs().max() < 1e-5
    ca = ClassAttn(64, num_heads=4, qkv_bias=True).eval()
    q = ca.q(x[:, :1]).reshape(2, 1, 4, 16).transpose(1, 2) * 16 ** -0.5
    k = ca.k(x).reshape(2, 35, 4, 16).transpose(1, 2)
    v = ca.v(x).reshape(2, 35, 4, 16).transpose(1, 2)
    ref = ca.proj((q @ k.transpose(-2, -1)).softmax(-1).matmul(v).transpose(1, 2).reshape(2, 1, 64))
    assert (ca(x) - ref).abs().max() < 1e-5


def test_channel_processing_equals_official_formulation():
    """Eq. 7 as the official ChannelProcessing writes it (softmax over tokens, adaptive average pool over the
    head's channels, sigmoid, then temperature, value = norm_v(mlp_v(x)), no projection)."""
    import torch.nn.functional as F
    from fan_mm.models.fan import ChannelProcessing
    torch.manual_seed(0)
    B, Hh, Ww, C, h = 2, 3, 5, 32, 4
    N = Hh * Ww
    cp = ChannelProcessing(C, num_heads=h, qkv_bias=True, mlp_hidden_dim=4 * C).eval()
    with torch.no_grad():
        cp.temperature.copy_(torch.rand(h, 1, 1) + 0.5)
        cp.mlp_v.dwconv.bn.running_mean.normal_()
    x = torch.randn(B, N, C)
    q = cp.q(x).reshape(B, N, h, C // h).permute(0, 2, 1, 3)
    k = x.reshape(B, N, h, C // h).permute(0, 2, 1, 3)
    q = q.softmax(-2).transpose(-1, -2)
    k = F.adaptive_avg_pool2d(k.softmax(-2), (N, 1))
    attn = torch.sigmoid(q @ k) * cp.temperature
    v = cp.norm_v(cp.mlp_v(x, Hh, Ww)).reshape(B, N, h, C // h).transpose(1, 2)
    ref = (attn * v.transpose(-1, -2)).permute(0, 3, 1, 2).reshape(B, N, C)
    assert (cp(x, Hh, Ww) - ref).abs().max() < 1e-6
    assert cp.norm_v.eps == 1e-5


def test_fourier_encoding_floor_division():
    """Classification PE: dim_t = T^(2 floor(k/2) / 32); the dense copies' true division is another function."""
    import math
    from fan_mm.models.fan import PositionalEncodingFourier
    pe = PositionalEncodingFourier(dim=8)
    with torch.no_grad():
        pe.token_projection.weight.copy_(torch.eye(8, 64)[:, :, None, None])  # channels 0..7 = y features 0..7
        pe.token_projection.bias.zero_()
    out = pe(3, 4)  # (1, 8, 3, 4)
    i = torch.arange(1, 4, dtype=torch.float64)[:, None]
    y = i / (3 + 1e-6) * 2 * math.pi
    k = torch.arange(8)
    dim_t = 10000 ** (2 * (k // 2) / 32)
    ref = torch.where(k % 2 == 0, torch.sin(y / dim_t), torch.cos(y / dim_t))  # (3, 8)
    assert torch.allclose(out[0, :, :, 0].T.double(), ref, atol=1e-6)
    true_div = torch.where(k % 2 == 0, torch.sin(y / 10000 ** (k / 32)), torch.cos(y / 10000 ** (k / 32)))
    assert (out[0, :, :, 0].T.double() - true_div).abs().max() > 1e-3


def test_timm_features_only():
    """timm's feature extraction wrapper works through forward_intermediates / prune_intermediate_layers."""
    with torch.device('meta'):
        model = timm.create_model('fan_tiny_12_p16_224', features_only=True, out_indices=(3, 7, -1))
        feats = model(torch.empty(1, 3, 64, 96))
    assert [tuple(f.shape) for f in feats] == [(1, 192, 4, 6)] * 3
    assert model.feature_info.channels() == [192] * 3 and model.feature_info.reduction() == [16] * 3
