"""FAN-ViT / FAN-Hybrid beyond the goldens: all sizes, other inputs, checkpoint containers and errors."""
import pytest
import timm
import torch

import fan_mm.models  # noqa: F401
from fan_mm.models.checkpoint_utils import CheckpointError
from fan_mm.models.fan import checkpoint_filter_fn
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


@pytest.mark.parametrize('name', VIT + HYBRID)
def test_forward_shapes_non_square(name):
    """All sizes run at a non-square input (shape propagation on the meta device)."""
    model = _meta_model(name).eval()
    x = torch.empty(2, 3, 96, 160, device='meta')  # multiples of 32; tokens 6 x 10
    assert tuple(model(x).shape) == (2, 1000)
    hybrid = 'hybrid' in name
    feats = model.forward_intermediates(x, indices=[0, -1], stem_indices=[0, 1] if hybrid else None,
                                        intermediates_only=True)
    C = model.embed_dim
    expect = ([(2, 128, 24, 40), (2, 256, 12, 20)] if hybrid else []) + [(2, C, 6, 10)] * 2
    assert [tuple(f.shape) for f in feats] == expect
    nlc = model.forward_intermediates(x, indices=1, output_fmt='NLC', intermediates_only=True)
    assert tuple(nlc[0].shape) == (2, 60, C)


@pytest.mark.parametrize('name', ['fan_base_18_p16_224', 'fan_large_16_p4_hybrid'])
def test_big_variants_compute(name):
    """Real numbers from the big variants at a small non-square input: finite, input-dependent logits."""
    torch.manual_seed(0)
    model = timm.create_model(name).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1000) and torch.isfinite(out).all()
    assert (out[0] - out[1]).abs().max() > 0


def test_any_input_size_and_batch_consistency():
    """Sizes that are multiples of 16 (ViT) work, and a sample's output does not depend on its batch."""
    torch.manual_seed(0)
    model = timm.create_model('fan_tiny_12_p16_224').eval()
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
    tagged = timm.create_model('fan_tiny_8_p4_hybrid', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert tagged.pretrained_cfg['custom_load'] is True
    assert timm.models.get_pretrained_cfg('fan_base_16_p4_hybrid.in22k_ft_in1k_384').input_size == (3, 384, 384)


def _load(name, path):
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
