"""GPU fast paths of the FAN blocks and the opt-in block compilation of every dense backbone.

The goldens (test_fan_golden.py) prove the fast paths compute the official function in float32; these
tests pin what the goldens cannot see: both branches of ``FANBlock.forward`` (with and without drop path),
the channels-last views of ``DWConv`` and the ConvNeXt stem, the single cast of norm outputs under
autocast, and ``compile_blocks`` (same outputs, same parameter names, clear errors).
"""
import pytest
import torch
import torch.nn as nn

import fan_mm.models  # noqa: F401
from fan_mm.models import fan as fan_module
from fan_mm.models.backbones import FANHybrid, FANSwin, FANViT, LVViT
from fan_mm.models.backbones.base import compile_trunk_blocks

SMALL_HYBRID = dict(embed_dim=64, depth=2, num_heads=2, hybrid_depths=(1, 1), hybrid_dims=(32, 48))


def _randomize(module: nn.Module) -> nn.Module:
    """Non-trivial LayerScale / norm / BN parameters, so that every term of a block matters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() <= 1 or name.endswith('temperature'):
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return module


def _reference_fan_block(blk: fan_module.FANBlock, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """The official block written out plainly (NCHW conv path, separate multiplies), eval mode."""
    B, N, C = x.shape
    # token mixing
    y = blk.norm1(x)
    a = blk.attn
    q = a.q(y).reshape(B, N, a.num_heads, a.head_dim).transpose(1, 2)
    k, v = a.kv(y).reshape(B, N, 2, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    attn = (q @ k.transpose(-2, -1) * a.head_dim ** -0.5).softmax(-1)
    x = x + blk.gamma1 * a.proj((attn @ v).transpose(1, 2).reshape(B, N, C))
    # channel processing
    y = blk.norm2(x)
    cp = blk.mlp
    h = cp.num_heads
    qc = cp.q(y).reshape(B, N, h, C // h).permute(0, 2, 1, 3).softmax(-2)           # (B, h, N, C/h)
    kc = y.reshape(B, N, h, C // h).permute(0, 2, 1, 3).softmax(-2).mean(-1, keepdim=True)  # (B, h, N, 1)
    gate = ((kc.transpose(-2, -1) @ qc).sigmoid() * cp.temperature).permute(0, 2, 1, 3).reshape(B, 1, C)
    m = cp.mlp_v
    hid = m.fc1(y)
    d = m.dwconv
    hmap = hid.transpose(1, 2).reshape(B, -1, H, W).contiguous()
    hmap = d.conv2(d.bn(d.act(d.conv1(hmap))))
    hid = hid + m.gamma * hmap.flatten(2).transpose(1, 2)
    v = cp.norm_v(m.fc2(hid))
    return x + blk.gamma2 * (v * gate)


@pytest.mark.parametrize('drop_path', [0., 0.1])
def test_fan_block_matches_plain_formula(drop_path):
    # drop_path > 0 takes the second branch of FANBlock.forward; in eval mode drop path is the identity,
    # so both branches must give the plain formula.
    torch.manual_seed(0)
    blk = _randomize(fan_module.FANBlock(32, num_heads=4, drop_path=drop_path)).eval()
    x = torch.randn(2, 6 * 5, 32)
    with torch.no_grad():
        out = blk(x, 6, 5)
        ref = _reference_fan_block(blk, x, 6, 5)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_dwconv_channels_last_view_is_not_copied():
    d = fan_module.DWConv(8)
    x = torch.randn(2, 4 * 3, 8)
    nchw = x.reshape(2, 4, 3, 8).permute(0, 3, 1, 2)
    assert nchw.data_ptr() == x.data_ptr() and nchw.is_contiguous(memory_format=torch.channels_last)
    ref = d.conv2(d.bn(d.act(d.conv1(x.transpose(1, 2).reshape(2, 8, 4, 3).contiguous()))))
    torch.testing.assert_close(d(x, 4, 3), ref.flatten(2).transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_convnext_block_matches_conv_formula():
    torch.manual_seed(0)
    blk = _randomize(fan_module.ConvNeXtBlock(16)).eval()
    x = torch.randn(2, 16, 9, 7)
    # official: dwconv -> LayerNorm2d (unbiased variance) -> 1x1 conv MLP -> * gamma, + x
    y = blk.conv_dw(x)
    var, mu = torch.var_mean(y, dim=1, unbiased=True, keepdim=True)
    y = (y - mu) / torch.sqrt(var + blk.norm.eps) * blk.norm.weight[:, None, None] + blk.norm.bias[:, None, None]
    ref = x + blk.gamma[:, None, None] * blk.mlp.fc2(blk.mlp.act(blk.mlp.fc1(y)))
    with torch.no_grad():
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            torch.testing.assert_close(blk(inp), ref, rtol=1e-5, atol=1e-5)


def test_norm_output_cast_once_under_autocast():
    x = torch.randn(2, 3)
    assert fan_module._cast_for_linears(x) is x
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert fan_module._cast_for_linears(x).dtype == torch.bfloat16
    assert fan_module._cast_for_linears(torch.empty(2, 3, device='meta')).device.type == 'meta'


def test_autocast_block_close_to_float32():
    torch.manual_seed(0)
    blk = fan_module.FANBlock(64, num_heads=4).eval()
    x = torch.randn(2, 8 * 8, 64)
    with torch.no_grad():
        ref = blk(x, 8, 8)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = blk(x, 8, 8)
    assert out.dtype == torch.float32  # residual stream stays float32, as in the official model
    assert (out - ref).abs().max() / ref.abs().max() < 2e-2


@pytest.mark.parametrize('cls, kwargs, n_blocks', [
    (FANHybrid, dict(arch=SMALL_HYBRID), 1 + 1 + 2 + 2),   # ConvNeXt stages, FAN blocks, class attention
    (FANViT, dict(arch=dict(embed_dim=64, depth=3, num_heads=2)), 3 + 2),
    (LVViT, dict(arch=dict(embed_dim=48, depth=4, num_heads=2, stem_chs=16), out_indices=(1, 3), side_layers=False), 4),
    (FANSwin, dict(arch=dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4))), 8),
])
def test_compile_blocks_same_outputs_and_names(cls, kwargs, n_blocks):
    torch.manual_seed(0)
    plain = cls(**kwargs).eval()
    compiled = cls(**kwargs, compile_blocks=dict(backend='eager')).eval()
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints load as before
    compiled.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref, out = plain(x), compiled(x)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b)
    compiled_blocks = [m for m in compiled.modules() if getattr(m, '_compiled_call_impl', None) is not None]
    assert len(compiled_blocks) == n_blocks
    assert compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2))) == 0


def test_compile_blocks_bad_value():
    with pytest.raises(TypeError, match='compile_blocks must be a bool or a dict'):
        FANHybrid(arch=SMALL_HYBRID, compile_blocks='yes')
