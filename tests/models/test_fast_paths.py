"""GPU fast paths of the FAN blocks and the opt-in block compilation of every dense backbone.

The goldens (test_fan_golden.py) prove the fast paths compute the official function in float32; these
tests pin what the goldens cannot see: both branches of ``FANBlock.forward`` (with and without drop path),
the channels-last views of ``DWConv`` and the ConvNeXt stem, the single cast of norm outputs under
autocast, what the backward keeps under autocast (GELU output recomputed, stem norms in the autocast dtype,
no float32 4C-wide sum in ``DWConvMlp``), and ``compile_blocks`` (same outputs, same parameter names, clear
errors).
"""
import math
from copy import deepcopy
import os
import re
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import fan_mm.models  # noqa: F401
from fan_mm.models import fan as fan_module
from fan_mm.models.backbones import FANHybrid, FANSwin, FANViT, LVViT
from fan_mm import layers
from fan_mm.layers import compile_trunk_blocks
from fan_mm.layers.compile import CompiledCall

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


DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [None, torch.bfloat16, torch.float16])
@pytest.mark.parametrize('name, size', [('fan_tiny_8_p4_hybrid', 64), ('fan_tiny_12_p16_224', 64),
                                        ('fan_swin_tiny_patch4_window7_224', 224)])
def test_gradients_laid_out_like_their_parameters(name, size, dtype, device):
    """DDP's gradient buckets copy the parameters' strides and warn ("Grad strides do not match bucket view
    strides") for every gradient laid out otherwise: the depthwise convs on channels_last maps are the case."""
    if dtype is torch.float16 and device == 'cpu':
        pytest.skip('fp16 autocast is a CUDA setting')
    from fan_mm.models import fan_swin
    model = getattr(fan_module, name, None) or getattr(fan_swin, name)
    model = model().to(device)
    with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        out = model(torch.randn(2, 3, size, size, device=device))
    out.float().sum().backward()
    mismatched = [(n, p.stride(), p.grad.stride()) for n, p in model.named_parameters()
                  if p.grad is not None and p.grad.stride() != p.stride()]
    assert not mismatched


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


def test_convnext_block_keeps_one_wide_tensor_for_backward():
    blk = fan_module.ConvNeXtBlock(16).train()
    x = torch.randn(2, 16, 9, 7).contiguous(memory_format=torch.channels_last)
    for autocast in (False, True):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            _, kept = _saved_tensors(lambda: blk(x))
        # the fc1 output (for GELU's backward), not the GELU output (recomputed)
        assert len([shape for _, shape in kept if math.prod(shape) == 2 * 64 * 9 * 7]) == 1


def test_compiled_convnext_block_keeps_what_the_custom_function_kept(monkeypatch):
    # Compiled, gelu_linear runs plain ops instead of GeluLinear (whose graphs AOTAutograd's cache refuses).
    # That costs no memory: inside torch.compile AOTAutograd traces a custom function's forward and backward
    # and its min-cut partitioner chooses the saved tensors again, for either form the same ones
    # ('aot_eager_decomp_partition' runs inductor's partitioner without inductor).
    from fan_mm.layers import GeluLinear
    blk = fan_module.ConvNeXtBlock(16).train()
    x = torch.randn(2, 16, 9, 7).contiguous(memory_format=torch.channels_last)

    def wide_tensors_kept():
        torch._dynamo.reset()
        run = torch.compile(blk, backend='aot_eager_decomp_partition', dynamic=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            _, kept = _saved_tensors(lambda: run(x))
        return sorted((str(dtype), shape) for dtype, shape in kept if math.prod(shape) == 2 * 64 * 9 * 7)
    plain = wide_tensors_kept()
    monkeypatch.setattr(fan_module, 'gelu_linear', lambda h, w, b, a='none': GeluLinear.apply(h, w, b, a))
    assert wide_tensors_kept() == plain and len(plain) >= 1


def test_norm_output_cast_once_under_autocast():
    x = torch.randn(2, 3)
    assert layers.cast_for_linears(x) is x
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert layers.cast_for_linears(x).dtype == torch.bfloat16
    assert layers.cast_for_linears(torch.empty(2, 3, device='meta')).device.type == 'meta'


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


def _saved_tensors(fn):
    """(dtype, shape) of every distinct tensor autograd keeps for the backward of ``fn()``, parameters excluded."""
    saved = {}

    def pack(t):
        if not isinstance(t, nn.Parameter):
            saved[(t.untyped_storage().data_ptr(), t.dtype, tuple(t.shape))] = (t.dtype, tuple(t.shape))
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, list(saved.values())


@pytest.mark.parametrize('autocast', [False, True])
@pytest.mark.parametrize('with_bias, frozen', [(True, False), (False, False), (True, True)])
def test_gelu_linear_same_values_and_grads_as_plain_ops(autocast, with_bias, frozen):
    torch.manual_seed(0)
    lin = nn.Linear(24, 8, bias=with_bias).requires_grad_(not frozen)
    h = torch.randn(2, 5, 3, 24)
    if autocast:
        h = h.bfloat16()  # what the fc1 before it returns under autocast
    ctx = torch.autocast('cpu', dtype=torch.bfloat16) if autocast else torch.autocast('cpu', enabled=False)
    grads = []
    for recompute in (False, True):
        lin.zero_grad(set_to_none=True)
        x = h.clone().requires_grad_()
        with ctx:
            if recompute:
                out, kept = _saved_tensors(lambda: layers.GeluLinear.apply(x, lin.weight, lin.bias, 'none'))
            else:
                out, kept_ref = _saved_tensors(lambda: lin(F.gelu(x)))
        (out.float() * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append((out, x.grad, lin.weight.grad, lin.bias.grad if with_bias else None))
    for a, b in zip(*grads):
        if a is None or b is None:
            assert a is None and b is None
            continue
        assert a.dtype == b.dtype
        # the same kernels in the same dtypes: equal up to float32 summation order
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    assert (lin.weight.grad is None) == frozen
    # what the backward keeps: the input (and the cast weight), not the 24-wide GELU output
    assert sum(1 for _, shape in kept if math.prod(shape) == h.numel()) == 1
    if not frozen:  # (a frozen linear needs no GELU output for its weight gradient)
        assert sum(1 for _, shape in kept_ref if math.prod(shape) == h.numel()) == 2


def test_stem_norm_in_autocast_dtype_same_values_no_float32_copy():
    # CUDA autocast runs layer_norm in float32 (a float32 copy of a bf16 input, a float32 output that the
    # next conv / linear casts back); the norms that only feed convs / linears skip that. Reference: the
    # float32 arithmetic (with weight and bias rounded to bf16, as the bf16 kernel needs) rounded once.
    torch.manual_seed(0)
    for unbiased in (False, True):
        norm = _randomize(fan_module.ConvNeXtLayerNorm2d(16, unbiased=unbiased, feeds_low_precision=True))
        x = torch.randn(2, 5, 4, 16).bfloat16().requires_grad_()
        f = 15 / 16 if unbiased else 1.
        w, b = (norm.weight * f ** 0.5).bfloat16().float(), norm.bias.bfloat16().float()
        ref = F.layer_norm(x.float(), (16,), w, b, norm.eps * f).bfloat16()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out, kept = _saved_tensors(lambda: norm.forward_nhwc(x))
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out, ref, rtol=0, atol=0)  # same arithmetic, same rounding
        assert not [s for dt, s in kept if dt == torch.float32 and s == tuple(x.shape)]
        # float32 inputs, or autocast off: the float32 LayerNorm
        x32 = x.detach().float()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert norm.forward_nhwc(x32).dtype == torch.float32
        torch.testing.assert_close(norm.forward_nhwc(x32), ref.float(), rtol=1e-2, atol=1e-2)


def test_dwconv_mlp_sum_stays_in_autocast_dtype():
    from torch.utils._python_dispatch import TorchDispatchMode
    casts = []

    class CastLog(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._to_copy.default and args[0].dim() > 1 and args[0].shape[-1] == 64:
                casts.append((args[0].dtype, tuple(args[0].shape)))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    mlp = _randomize(fan_module.DWConvMlp(16, 64)).train()
    x = torch.randn(2, 6 * 5, 16)
    with CastLog(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = mlp(x, 6, 5)
    assert out.dtype == torch.bfloat16
    assert not [c for c in casts if len(c[1]) == 3]  # no 4C-wide token tensor cast (only fc2's weight)
    mlp.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        out = mlp(x, 6, 5)
    with torch.no_grad():
        ref = mlp(x, 6, 5)
    assert (out.float() - ref).abs().max() / ref.abs().max() < 2e-2


def test_blocks_compile_without_graph_breaks_under_autocast(monkeypatch):
    # A graph break splits a compiled block into pieces, each with its own guards and, with
    # mode='reduce-overhead', its own CUDA graph. torch 2.11's dynamo cannot trace
    # torch.amp.is_autocast_available; newer ones can, so it is made untraceable here to keep the test
    # meaningful on any torch: the blocks must not call it while being compiled.
    is_available = torch.amp.is_autocast_available

    def untraceable(device_type):
        torch._dynamo.graph_break()
        return is_available(device_type)
    monkeypatch.setattr(torch.amp, 'is_autocast_available', untraceable)
    torch._dynamo.reset()
    torch.manual_seed(0)
    stem_map = torch.randn(2, 16, 4, 4).contiguous(memory_format=torch.channels_last)
    cases = ((fan_module.FANBlock(32, 4).train(), (torch.randn(2, 16, 32), 4, 4)),
             (fan_module.ConvNeXtBlock(16).train(), (stem_map,)))
    for blk, args in cases:
        compiled = torch.compile(blk, backend='aot_eager', fullgraph=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out, ref = compiled(*args), blk(*args)
        torch.testing.assert_close(out, ref)
        out.float().sum().backward()


@pytest.mark.parametrize('cls, kwargs, n_blocks', [
    (FANHybrid, dict(arch=SMALL_HYBRID), 1 + 1 + 2 + 2),   # ConvNeXt stages, FAN blocks, class attention
    (FANViT, dict(arch=dict(embed_dim=64, depth=3, num_heads=2)), 3 + 2),
    (LVViT, dict(arch=dict(embed_dim=48, depth=4, num_heads=2, stem_chs=16), out_indices=(1, 3), side_layers=False), 4),
    (FANSwin, dict(arch=dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4))), 8),
])
@pytest.mark.parametrize('cuda_graphs', [False, True])
def test_compile_blocks_same_outputs_and_names(cls, kwargs, n_blocks, cuda_graphs):
    # With mode='reduce-overhead' (CUDA graphs) each block's forward is compiled behind a wrapper that
    # clones its outputs without gradients (next test); the eager backend ignores the mode, so this runs
    # on a CPU.
    options = dict(backend='eager', mode='reduce-overhead') if cuda_graphs else dict(backend='eager')
    options['on_cpu'] = True  # else a CPU forward stays eager (next test)
    torch.manual_seed(0)
    plain = cls(**kwargs).eval()
    compiled = cls(**kwargs, compile_blocks=options).eval()
    assert list(compiled.state_dict()) == list(plain.state_dict())  # checkpoints load as before
    compiled.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref, out = plain(x), compiled(x)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b)
    calls = [m._compiled_call_impl for m in compiled.modules()
             if isinstance(getattr(m, '_compiled_call_impl', None), CompiledCall)]
    assert len(calls) == n_blocks
    assert all(c.clones_without_grad is cuda_graphs and not c.cuda_only for c in calls)
    assert compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2))) == 0


def test_cuda_graph_blocks_clone_outputs_only_without_grad(monkeypatch):
    produced = []

    def fake_compile(fn, **options):  # records what the "compiled" forward returns
        assert options == dict(mode='reduce-overhead')

        def run(*args, **kwargs):
            produced.append(fn(*args, **kwargs))
            return produced[-1]
        return run
    monkeypatch.setattr(torch, 'compile', fake_compile)
    blk = fan_module.FANBlock(16, 2)
    assert compile_trunk_blocks(nn.ModuleDict(dict(blocks=nn.ModuleList([blk]))), mode='reduce-overhead') == 1
    x = torch.randn(1, 4, 16)
    with torch.no_grad():
        out = blk(x, 2, 2)
    assert out.data_ptr() != produced[-1].data_ptr()
    torch.testing.assert_close(out, produced[-1])
    assert blk(x, 2, 2) is produced[-1]  # gradients on: no copy


def test_compiled_blocks_run_eagerly_off_cuda_when_cuda_only(monkeypatch):
    # a model compiled for a GPU and moved back to the CPU must not compile again for the CPU
    compiled_calls = []

    def fake_compile(fn, **options):
        def run(*args, **kwargs):
            compiled_calls.append(1)
            return fn(*args, **kwargs)
        return run
    monkeypatch.setattr(torch, 'compile', fake_compile)
    blk = fan_module.FANBlock(16, 2)
    compile_trunk_blocks(nn.ModuleDict(dict(blocks=nn.ModuleList([blk]))), cuda_only=True, mode='reduce-overhead')
    x = torch.randn(1, 4, 16)
    with torch.no_grad():
        out = blk(x, 2, 2)
    assert compiled_calls == [] and out.shape == x.shape
    other = fan_module.FANBlock(16, 2)
    compile_trunk_blocks(nn.ModuleDict(dict(blocks=nn.ModuleList([other]))), mode='reduce-overhead')
    with torch.no_grad():
        other(x, 2, 2)
    assert compiled_calls == [1]


@pytest.mark.parametrize('copy_how', ['deepcopy', 'torch.save'])
def test_copies_of_a_compiled_backbone_are_their_own_and_compile_again(copy_how, tmp_path):
    """An EMA copy (mmengine deep-copies the model) or ``torch.save(model)`` after the first compiled forward:
    the copy must run its own weights (not the original's compiled blocks) and compile again at its first
    forward; pickling must work."""
    import copy
    torch.manual_seed(0)
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', mode='reduce-overhead',
                                                             on_cpu=True)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    assert model._blocks_compiled
    if copy_how == 'deepcopy':
        twin = copy.deepcopy(model)
    else:
        torch.save(model, tmp_path / 'model.pth')
        twin = torch.load(tmp_path / 'model.pth', weights_only=False)
    assert not twin._blocks_compiled
    assert not any(isinstance(getattr(m, '_compiled_call_impl', None), CompiledCall) for m in twin.modules())
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
        out = twin(x)
    assert twin._blocks_compiled and sum(
        isinstance(getattr(m, '_compiled_call_impl', None), CompiledCall) for m in twin.modules()) == 6
    assert not all(torch.allclose(a, b) for a, b in zip(ref, out))  # its own (halved) weights ran
    with torch.no_grad():
        for a, b in zip(ref, model(x)):  # the original is untouched
            torch.testing.assert_close(a, b)


def test_compile_blocks_stay_eager_on_cpu(monkeypatch):
    # The model configs switch compile_blocks on for GPU runs; a CPU run (the demo, the tests, CPU
    # clusters) must stay eager, and compile once the model is on a GPU.
    import fan_mm.models.backbones.base as base
    calls = []
    monkeypatch.setattr(base, 'compile_trunk_blocks', lambda trunk, **opts: calls.append(opts) or 0)
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(mode='reduce-overhead', dynamic=True)).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
        model(torch.randn(1, 3, 64, 64))
    assert calls == [] and model._told_eager and not model._blocks_compiled  # still waiting for a CUDA input
    with torch.no_grad():  # with on_cpu=True the dict's other options reach compile_trunk_blocks
        FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True)).eval()(
            torch.randn(1, 3, 64, 64))
    assert calls == [dict(backend='eager', cuda_only=False)]
    # activation checkpointing recomputes blocks in the backward: compiled, but without CUDA graphs
    with torch.no_grad():
        FANHybrid(arch=SMALL_HYBRID, with_cp=True,
                  compile_blocks=dict(mode='reduce-overhead', dynamic=True, on_cpu=True)).eval()(torch.randn(1, 3, 64, 64))
    assert calls[-1] == dict(dynamic=True, cuda_only=False)
    with torch.no_grad():
        FANHybrid(arch=SMALL_HYBRID, with_cp=True, compile_blocks=dict(
            options={'triton.cudagraphs': True}, on_cpu=True)).eval()(torch.randn(1, 3, 64, 64))
    assert calls[-1] == dict(options={'triton.cudagraphs': False}, cuda_only=False)
    # a call with keyword arguments only: the weights' device decides (CPU here: eager)
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(mode='reduce-overhead')).eval()
    with torch.no_grad():
        model(x=torch.randn(1, 3, 64, 64))
    assert len(calls) == 3 and model._told_eager


def test_compile_blocks_depthwise_triton_routes_the_convs_before_compiling(monkeypatch):
    """compile_blocks' depthwise='triton': where the blocks compile, every depthwise conv becomes the Triton
    module first (so the compiled graphs hold the Triton operator), the option is not passed on to
    torch.compile, and a backbone without depthwise convs refuses it by name."""
    import fan_mm.models.backbones.base as base
    from fan_mm.layers.depthwise_triton import TritonDepthwiseConv2d
    seen = []

    def record(trunk, **opts):
        seen.append((opts, sum(isinstance(m, TritonDepthwiseConv2d) for m in trunk.modules())))
        return 0
    monkeypatch.setattr(base, 'compile_trunk_blocks', record)
    torch.manual_seed(0)
    plain = FANHybrid(arch=SMALL_HYBRID).eval()
    depthwise = [m for m in plain.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1]
    routed = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True,
                                                              depthwise='triton')).eval()
    routed.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outs, refs = routed(x), plain(x)
    assert seen == [(dict(backend='eager', cuda_only=False), len(depthwise))] and len(depthwise) > 0
    for a, b in zip(outs, refs):  # off CUDA the routed convs run F.conv2d: the same maps
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert list(routed.state_dict()) == list(plain.state_dict())
    # a copy made after the first forward (an EMA model, torch.save of the model) compiles again at its own
    # first forward and finds its convs routed already: the same count, no refusal
    copy = deepcopy(routed)
    with torch.no_grad():
        copy(x)
    assert seen[-1] == (dict(backend='eager', cuda_only=False), len(depthwise))
    with torch.no_grad():  # the default, 'cudnn', leaves the convs as they are
        FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True, depthwise='cudnn')).eval()(x)
    assert seen[-1] == (dict(backend='eager', cuda_only=False), 0)
    with pytest.raises(ValueError, match=r"depthwise='winograd'; use one of \['cudnn', 'triton'\]"):
        FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(depthwise='winograd'))
    lvvit = LVViT(arch=dict(embed_dim=48, depth=2, num_heads=2, stem_chs=16), out_indices=(1,), side_layers=False,
                  compile_blocks=dict(backend='eager', on_cpu=True, depthwise='triton')).eval()
    with pytest.raises(ValueError, match="LVViT: compile_blocks depthwise='triton', but it has no depthwise"):
        with torch.no_grad():
            lvvit(torch.randn(1, 3, 64, 64))
    # an install without Triton gets the option named at the first compiled forward, nothing routed
    import fan_mm.layers.depthwise_triton as depthwise_triton
    monkeypatch.setattr(depthwise_triton, 'triton', None)
    unrouted = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True, depthwise='triton'))
    with pytest.raises(RuntimeError, match="FANHybrid: compile_blocks depthwise='triton' needs Triton, which is "
                                           "not installed; use depthwise='cudnn'"):
        with torch.no_grad():
            unrouted.eval()(x)
    assert not any(isinstance(m, TritonDepthwiseConv2d) for m in unrouted.modules())


def test_first_compiled_forward_logs_what_it_compiled(monkeypatch):
    # the log line says how long the first compiled forward took and what it compiled (with inductor, the
    # cache hits say whether an earlier run's kernel cache served)
    import fan_mm.models.backbones.base as base
    lines = []
    monkeypatch.setattr(base, 'print_log', lambda msg, **kwargs: lines.append(msg))
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True))
    torch._dynamo.reset()
    model(torch.randn(1, 3, 64, 64))
    model(torch.randn(1, 3, 64, 64))
    first = [line for line in lines if 'first compiled forward' in line]
    assert len(first) == 1, lines
    assert re.search(r'FANHybrid: first compiled forward [\d.]+ s, 4 graphs compiled in [\d.]+ s \(dynamo tracing',
                     first[0]), first[0]
    # in training the line says that static-shape backward graphs are compiled later, outside its count
    assert first[0].endswith('static-shape backward graphs compile at the first backward, after this'), first[0]
    lines.clear()
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True)).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    (first,) = [line for line in lines if 'first compiled forward' in line]
    assert 'backward' not in first, first
    # with symbolic sizes (the detection configs) the backward compiles inside the counted frames
    lines.clear()
    FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True, dynamic=True))(
        torch.randn(1, 3, 64, 64))
    (first,) = [line for line in lines if 'first compiled forward' in line]
    assert 'backward' not in first, first


def test_first_compiled_forward_warns_when_inductor_skipped_cuda_graphs(monkeypatch):
    # a graph that inductor runs without the CUDA graphs its options ask for is silently slower: the line of
    # the first compiled forward is then a warning that says so. Inductor reports a skip through torch's
    # log_cudagraph_skip_and_bump_counter (CPU runs compile without CUDA graphs, so one is reported here by
    # calling it during that forward, as inductor would)
    import logging
    from torch._inductor.cudagraph_utils import log_cudagraph_skip_and_bump_counter
    import fan_mm.models.backbones.base as base
    lines = []
    monkeypatch.setattr(base, 'print_log', lambda msg, **kwargs: lines.append((msg, kwargs.get('level'))))
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True)).eval()
    model.register_forward_pre_hook(
        lambda *args: log_cudagraph_skip_and_bump_counter('skipping cudagraphs due to a test'))
    torch._dynamo.reset()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    (first,) = [(msg, level) for msg, level in lines if 'first compiled forward' in msg]
    assert first[1] == logging.WARNING and 'CUDA graphs skipped for 1 graph,' in first[0], first
    lines.clear()
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', on_cpu=True)).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    (first,) = [(msg, level) for msg, level in lines if 'first compiled forward' in msg]
    assert first[1] == logging.INFO and 'skipped' not in first[0], first


def test_compile_blocks_misspelt_option_named_at_build():
    with pytest.raises(ValueError, match=r"compile_blocks: unknown option\(s\) \['dynamc'\]"):
        FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(mode='reduce-overhead', dynamc=True))


def test_no_compile_turns_off_the_configs_fast_path():
    from fan_mm.engine.runner import load_config
    from fan_mm.models.builder import disable_backbone_compile
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg_path = osp.join(root, 'configs', 'fan', 'maskrcnn_fan_s_hybrid_3x_coco.py')
    assert load_config(cfg_path).model.backbone.compile_blocks == dict(mode='reduce-overhead', dynamic=True)
    assert load_config(cfg_path, eager=True).model.backbone.compile_blocks is False
    seg = load_config(osp.join(root, 'configs', 'fan', 'segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py'))
    assert seg.model.backbone.compile_blocks == dict(mode='reduce-overhead')
    r50 = load_config(osp.join(root, 'configs', 'toy', 'maskrcnn_r50_toy_coco.py'))
    assert disable_backbone_compile(r50) is False and 'compile_blocks' not in r50.model.backbone
    empty = load_config(cfg_path)
    empty.model.backbone.compile_blocks = {}  # {} compiles with torch.compile's defaults: turned off too
    assert disable_backbone_compile(empty) is True and empty.model.backbone.compile_blocks is False


def test_compile_blocks_bad_value():
    with pytest.raises(TypeError, match='compile_blocks must be a bool or a dict'):
        FANHybrid(arch=SMALL_HYBRID, compile_blocks='yes')


def test_compile_trunk_blocks_raises_the_recompile_limit():
    """One forward serves all blocks of a class (several widths, dtypes, grad modes, shapes): dynamo's
    default of 8 versions per function sent a toy detection run back to eager. Raised, never lowered.

    dynamo's settings are changed through its own ``config.patch``, which restores them on exit: pytest's
    monkeypatch undoes a ConfigModule key with ``delattr`` on some versions and hides it for later tests."""
    import torch._dynamo.config as dynamo_config
    from fan_mm.layers import MIN_RECOMPILE_LIMIT
    with dynamo_config.patch(recompile_limit=8):
        compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2)))
        assert dynamo_config.recompile_limit == MIN_RECOMPILE_LIMIT >= 32
    with dynamo_config.patch(recompile_limit=1000):
        compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2)))
        assert dynamo_config.recompile_limit == 1000
    with dynamo_config.patch(recompile_limit=4), pytest.MonkeyPatch.context() as mp:
        mp.setenv('DYNAMO_CACHE_SIZE_LIMIT', '4')  # the user's own limit (mmdet's switch) stays
        compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2)))
        assert dynamo_config.recompile_limit == 4
    assert hasattr(dynamo_config, 'recompile_limit')


def test_compile_trunk_blocks_turns_off_ddp_graph_splitting():
    """Blocks compiled one by one need no DDP bucket splitting, which failed with dynamic shapes."""
    import torch._dynamo.config as dynamo_config
    with dynamo_config.patch(optimize_ddp=True):
        compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2)))
        assert dynamo_config.optimize_ddp is False
    assert hasattr(dynamo_config, 'optimize_ddp')


def test_compile_trunk_blocks_specializes_floats():
    """Module floats (norm eps, dropout p) are constants of the compiled graphs, not symbolic inputs."""
    import torch._dynamo.config as dynamo_config
    with dynamo_config.patch(specialize_float=False):
        compile_trunk_blocks(nn.Sequential(nn.Linear(2, 2)))
        assert dynamo_config.specialize_float is True
    assert hasattr(dynamo_config, 'specialize_float')


def _recording_backend(graphs):
    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward
    return backend


def test_dynamic_block_graphs_enter_the_compile_caches():
    """What makes a later process's warm-up short: with ``dynamic=True`` (the detection configs) a FAN-Hybrid
    block graph must take no Python float as a symbolic input (dynamo would fail to tensorify it and trace the
    block again, a first attempt no cache holds) and hold no custom autograd function (AOTAutograd's cache
    bypasses such graphs, so every process traced them again). The ConvNeXt blocks call ``gelu_linear``,
    which is ``GeluLinear`` eagerly and the plain ops when compiled."""
    graphs = []
    model = FANHybrid(arch=SMALL_HYBRID, drop_path_rate=0.1,
                      compile_blocks=dict(backend=_recording_backend(graphs), dynamic=True, on_cpu=True))
    torch._dynamo.reset()
    outs = model(torch.randn(2, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    kinds = {type(b).__name__ for b in model.modules() if b._compiled_call_impl is not None}
    assert kinds == {'ConvNeXtBlock', 'FANBlock', 'ClassAttentionBlock'}
    assert len(graphs) >= 3
    for gm in graphs:
        # dynamo passes a symbolic Python float as a 0-d float64 tensor (nothing of the model is float64)
        float_inputs = [n.name for n in gm.graph.nodes if n.op == 'placeholder' and (
            isinstance(n.meta.get('example_value'), (float, torch.SymFloat))
            or getattr(n.meta.get('example_value'), 'dtype', None) == torch.float64)]
        assert not float_inputs, gm.code
        functions = [n.name for n in gm.graph.nodes if 'autograd_function_apply' in str(n.target)]
        assert not functions, gm.code


def test_hybrid_blocks_compile_as_many_graphs_with_dynamic_shapes_as_without():
    """One graph per block kind, width and grad mode, dynamic or not: the first ConvNeXt block must not get
    graphs of its own because the stem hands it a view (dynamic shapes trace a view's base)."""
    from torch._dynamo.utils import counters
    arch = dict(SMALL_HYBRID, hybrid_depths=(2, 2))
    counts = {}
    for dynamic in (False, True):
        model = FANHybrid(arch=arch, compile_blocks=dict(backend='eager', dynamic=dynamic, on_cpu=True))
        torch._dynamo.reset()
        counters.clear()
        outs = model(torch.randn(2, 3, 64, 64))
        sum(o.sum() for o in outs).backward()
        with torch.no_grad():
            model(torch.randn(2, 3, 64, 64))
        counts[dynamic] = counters['stats']['unique_graphs']
    # (ConvNeXt at 2 widths + FAN + class attention) x (training, inference)
    assert counts == {False: 8, True: 8}


def test_persistent_compile_cache(monkeypatch, tmp_path):
    """Inductor's kernels go to a folder that outlives the job (not /tmp), unless torch's own
    TORCHINDUCTOR_CACHE_DIR says where."""
    from fan_mm.layers.compile import persistent_compile_cache
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR', raising=False)
    assert persistent_compile_cache() == str(tmp_path / '.cache' / 'fan_mm' / 'torchinductor')
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == persistent_compile_cache()
    assert os.path.isdir(persistent_compile_cache())
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(tmp_path / 'mine'))
    assert persistent_compile_cache() == str(tmp_path / 'mine')
    # a home where the folder cannot be made: torch's default stays, and the user is told
    monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR')
    (tmp_path / 'file_home').write_text('')
    monkeypatch.setenv('HOME', str(tmp_path / 'file_home'))
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    with pytest.warns(UserWarning, match='cannot write the compile cache folder'):
        assert persistent_compile_cache() == default_cache_dir()
    assert 'TORCHINDUCTOR_CACHE_DIR' not in os.environ


def test_inference_step_one_generation_per_forward(monkeypatch):
    # begin_inference_step marks one CUDA-graph generation per gradient-free backbone forward: a number
    # never used before, torch's automatic generations restored after it (an unmarked training loop goes
    # on as before), one more marked step where the program marks steps itself, nothing when nested.
    # The CUDA behaviour (no re-recording, no copies) is in test_fast_paths_cuda.py.
    from torch._inductor import cudagraph_trees
    from fan_mm.layers.compile import begin_inference_step, end_inference_step
    box = cudagraph_trees.MarkStepBox
    monkeypatch.setattr(box, 'mark_step_counter', 0)
    device = torch.device('cuda', 0)  # the tree manager is only looked up: no CUDA needed
    seen = []
    for _ in range(2):
        token = begin_inference_step(device)
        assert token == 0 and box.mark_step_counter < 0
        seen.append(box.mark_step_counter)
        assert begin_inference_step(device) is None  # nested: the outer step holds
        end_inference_step(token)
        assert box.mark_step_counter == 0
    assert seen[0] != seen[1]
    box.mark_step_counter = -3  # the program called torch.compiler.cudagraph_mark_step_begin thrice
    token = begin_inference_step(device)
    assert token == -3 and box.mark_step_counter == -4
    end_inference_step(token)
    assert box.mark_step_counter == -4
    end_inference_step(None)


def test_drop_path_eagerly_is_timms():
    # the same random numbers and values as timm's DropPath, and the same (empty) state_dict
    from timm.layers import DropPath as TimmDropPath
    ours, theirs = layers.DropPath(0.3), TimmDropPath(0.3)
    x = torch.randn(64, 5, 7)
    torch.manual_seed(0)
    a = ours(x)
    torch.manual_seed(0)
    b = theirs(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a == 0).all(dim=(1, 2)).any()  # some paths dropped
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    ours.eval()
    assert ours(x) is x
    assert layers.DropPath(0.)(x) is x  # rate 0 in training: the input, no random numbers drawn


def test_drop_path_rates_share_one_compiled_graph():
    # FAN-Swin and LV-ViT give each block its own rate (linear over depth; LV-ViT's first block has rate 0);
    # compiled, the rate is read from a buffer, so the blocks share one graph instead of compiling one each
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    x = torch.ones(4000, 3)
    rates = (0.5, 0.2, 0.1, 0.)
    mods = [layers.DropPath(p) for p in rates]
    outs = [torch.compile(m, backend='eager', fullgraph=True)(x) for m in mods]
    assert counters['stats']['unique_graphs'] == 1
    assert torch.equal(outs[-1], x)  # rate 0: every sample kept, unscaled
    for p, out in zip(rates, outs):  # whole samples dropped at rate p, the rest scaled by 1 / (1 - p)
        rows_kept = (out != 0).all(dim=1)
        assert ((out == 0).all(dim=1) | rows_kept).all()
        assert abs((~rows_kept).float().mean().item() - p) < 0.04, p
        torch.testing.assert_close(out[rows_kept], torch.full_like(out[rows_kept], 1 / (1 - p)))
    compiled = torch.compile(mods[0], backend='eager', fullgraph=True)
    mods[0].drop_prob = 1.  # assigning the rate reaches the compiled graph (no recompile)
    assert (compiled(x) == 0).all()
    assert counters['stats']['unique_graphs'] == 1
    mods[0].eval()
    assert torch.equal(compiled(x), x)
    with pytest.raises(ValueError, match='drop_prob must be in'):
        mods[0].drop_prob = 1.5


def test_lvvit_blocks_with_linear_stochastic_depth_share_a_graph():
    # stochastic depth linear over depth (LV-ViT, FAN-Swin) no longer gives every block a graph of its own:
    # the rate is a tensor the graph reads, and LV-ViT's first block (rate 0) has a DropPath too: all four share one
    from torch._dynamo.utils import counters
    model = LVViT(arch=dict(embed_dim=48, depth=4, num_heads=2, stem_chs=16), out_indices=(1, 3),
                  side_layers=False, drop_path_rate=0.3, compile_blocks=dict(backend='eager', on_cpu=True))
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for b in model.trunk.blocks]
    assert len(set(rates)) == 4
    torch._dynamo.reset()
    counters.clear()
    model(torch.randn(1, 3, 64, 64))
    assert counters['stats']['unique_graphs'] == 1


def test_fan_swin_blocks_compile_one_graph_per_configuration():
    # FAN-Swin's blocks differ in shape, window shift and rate; compiled graphs follow the first two only
    # (7 blocks, 5 configurations here: the four shifted / unshifted blocks of stage 2 share two graphs)
    from torch._dynamo.utils import counters
    model = FANSwin(arch=dict(embed_dim=16, depths=(1, 1, 4, 1), num_heads=(1, 2, 2, 4)), drop_path_rate=0.3,
                    compile_blocks=dict(backend='eager', dynamic=False, on_cpu=True))
    blocks = [m for m in model.modules() if hasattr(m, 'shift_size') and hasattr(m, 'drop_path')]
    configurations = {(b.input_resolution, b.shift_size, type(b.drop_path)) for b in blocks}
    assert len(blocks) == 7 and len(configurations) == 5
    torch._dynamo.reset()
    counters.clear()
    model(torch.randn(1, 3, 224, 224))
    assert counters['stats']['unique_graphs'] == len(configurations)


@pytest.mark.parametrize('build', [
    lambda: FANHybrid(arch=SMALL_HYBRID),
    lambda: FANViT(arch=dict(embed_dim=48, depth=3, num_heads=2), block_indices=(0, 1, 2, -1)),
    lambda: FANSwin(arch=dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))),
    lambda: LVViT(arch=dict(embed_dim=48, depth=4, num_heads=2, stem_chs=16), out_indices=(1, 3), side_layers=False),
], ids=['fan_hybrid', 'fan_vit', 'fan_swin', 'lvvit'])
def test_whole_backbone_traces_as_one_graph(build):
    """A whole-backbone compile (the benchmark's +compile_full) is one graph, forward and backward: the glue
    between blocks has no graph break (the hybrid stem's view check once broke it)."""
    model = build().train()
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 64, 64))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


def test_blocks_see_one_input_dtype_under_autocast():
    """Under autocast the first block of every stage gets its input in float32 as the others do
    (fan_mm.layers.float32_stream): compiled, each block kind and width is one graph in training (4 for
    FAN-Hybrid: two ConvNeXt widths, FAN block, class attention), where the autocast-dtype input of each
    stage's first block made it 7 (on a CPU, whose autocast keeps the stem's LayerNorm output in bfloat16,
    stage 0 too). A ConvNeXt block computes the same from either input."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    blk = _randomize(fan_module.ConvNeXtBlock(16)).train()
    x = torch.randn(2, 16, 9, 7).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert torch.equal(blk(x), blk(x.float()))
        assert layers.float32_stream(x).dtype == torch.float32
    assert layers.float32_stream(x) is x  # outside autocast: as it is
    seen = []
    # two ConvNeXt blocks per stage, so that each stage has a first block and a later one
    model = FANHybrid(arch=dict(SMALL_HYBRID, hybrid_depths=(2, 2)),
                      compile_blocks=dict(backend='eager', dynamic=True, on_cpu=True)).train()
    for m in model.modules():
        if isinstance(m, (fan_module.ConvNeXtBlock, fan_module.FANBlock, fan_module.ClassAttentionBlock)):
            m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
    torch._dynamo.reset()
    counters.clear()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model(torch.randn(2, 3, 64, 64))
    assert set(seen) == {torch.float32}
    assert counters['stats']['unique_graphs'] == 4


def test_fan_swin_blocks_see_one_input_dtype_under_autocast():
    """FAN-Swin's stages start in float32 under autocast too: every block sees float32, so compiled, each stage
    is two graphs (shifted or not) per grad mode. Before, the first block of every stage got the autocast dtype
    from the patch merging (and the last stage, plain MLPs, stayed in it throughout): 9 graphs for FAN-Swin-T,
    where a third stage of depth 6 needed one for its first block alone."""
    from torch._dynamo.utils import counters
    from fan_mm.models.fan_swin import FANSwinBlock
    model = FANSwin(arch=dict(embed_dim=16, depths=(2, 2, 4, 2), num_heads=(1, 2, 2, 4)),
                    compile_blocks=dict(backend='eager', dynamic=False, on_cpu=True)).train()
    seen = []
    for m in model.modules():
        if isinstance(m, FANSwinBlock):
            m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].dtype))
    torch._dynamo.reset()
    counters.clear()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        model(torch.randn(1, 3, 64, 64))
    assert len(seen) == 10 and set(seen) == {torch.float32}
    assert counters['stats']['unique_graphs'] == 8


@pytest.mark.parametrize('cls, kwargs', [
    (FANHybrid, dict(arch=SMALL_HYBRID)),
    (FANViT, dict(arch=dict(embed_dim=48, depth=3, num_heads=2), block_indices=(0, 1, 2, -1))),
    (FANSwin, dict(arch=dict(embed_dim=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4)))),
    (LVViT, dict(arch=dict(embed_dim=48, depth=4, num_heads=2, stem_chs=16), out_indices=(1, 3), side_layers=False)),
], ids=['fan_hybrid', 'fan_vit', 'fan_swin', 'lvvit'])
def test_compile_scope_backbone_is_one_graph_with_the_eager_values_and_gradients(cls, kwargs):
    """compile_blocks=dict(scope='backbone'): the backbone's forward is one compiled graph (no block compiled
    on its own), with the eager model's outputs and gradients (AOTAutograd traces forward and backward, as
    inductor gets them), parameter names unchanged; hooks stay outside the graph."""
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    plain = _randomize(cls(**kwargs)).train()
    whole = cls(**kwargs, compile_blocks=dict(backend='aot_eager', scope='backbone', on_cpu=True)).train()
    assert list(whole.state_dict()) == list(plain.state_dict())
    whole.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, whole):  # no stochastic depth: compiled, DropPath draws from the random stream in
        for m in model.modules():  # another way than eager (a tensor rate), so the draws would differ
            if isinstance(m, layers.DropPath):
                m.drop_prob = 0.
    torch._dynamo.reset()
    counters.clear()
    for model in (plain, whole):
        model.zero_grad()
        sum(f.square().mean() for f in model(x)).backward()
    assert counters['stats']['unique_graphs'] == 1 and not counters['graph_break']
    assert isinstance(whole._whole_forward, CompiledCall) and not whole._whole_forward.cuda_only
    assert not any(isinstance(getattr(m, '_compiled_call_impl', None), CompiledCall) for m in whole.modules())
    for (name, p), q in zip(plain.named_parameters(), whole.parameters()):
        if p.grad is None:
            assert q.grad is None, name
        else:
            # float32 sums in another order (AOTAutograd's backward): relative to the gradient's scale
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5 * float(p.grad.abs().max()), msg=name)
    plain.eval(), whole.eval()
    with torch.no_grad():
        for a, b in zip(plain(x), whole(x)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('copy_how', ['deepcopy', 'torch.save'])
def test_copies_of_a_whole_compiled_backbone_are_their_own(copy_how, tmp_path):
    """scope='backbone' puts the compiled forward on the instance; a copy (EMA, torch.save) must not carry
    the original's (bound to the original's weights) but compile its own at its first forward."""
    import copy
    torch.manual_seed(0)
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', scope='backbone', on_cpu=True)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    assert isinstance(model._whole_forward, CompiledCall)
    if copy_how == 'deepcopy':
        twin = copy.deepcopy(model)
    else:
        torch.save(model, tmp_path / 'model.pth')
        twin = torch.load(tmp_path / 'model.pth', weights_only=False)
    assert twin._whole_forward is None and not twin._blocks_compiled
    assert twin.forward.__self__ is twin  # the door to the compiled forward is the copy's own
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
        out = twin(x)
    assert isinstance(twin._whole_forward, CompiledCall) and twin._whole_forward is not model._whole_forward
    assert not all(torch.allclose(a, b) for a, b in zip(ref, out))  # its own (halved) weights ran
    with torch.no_grad():
        for a, b in zip(ref, model(x)):  # the original is untouched
            torch.testing.assert_close(a, b)


def test_compile_scope_is_checked_at_build_and_logged(monkeypatch):
    with pytest.raises(ValueError, match=r"compile_blocks: scope='trunk'; use one of \['blocks', 'backbone'\]"):
        FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(scope='trunk'))
    import fan_mm.models.backbones.base as base
    lines = []
    monkeypatch.setattr(base, 'print_log', lambda msg, **kwargs: lines.append(msg))
    torch._dynamo.reset()
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(backend='eager', scope='backbone', on_cpu=True)).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert any(line.startswith("FANHybrid: torch.compile on the whole backbone as one graph ({'backend': 'eager'}")
               for line in lines), lines
    (first,) = [line for line in lines if 'first compiled forward' in line]
    assert re.search(r'1 graph compiled', first), first
    # activation checkpointing inside the one graph: compiled, but without CUDA graphs (as the blocks are)
    lines.clear()
    model = FANHybrid(arch=SMALL_HYBRID, with_cp=True, compile_blocks=dict(
        backend='aot_eager', mode='reduce-overhead', scope='backbone', on_cpu=True)).train()
    sum(f.square().mean() for f in model(torch.randn(1, 3, 64, 64))).backward()
    assert "FANHybrid: with_cp=True, so the backbone is compiled without CUDA graphs ({'backend': 'aot_eager'})" \
        in lines, lines
    assert not model._whole_forward.clones_without_grad
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    # on a CPU without on_cpu it stays eager, as the blockwise default does
    model = FANHybrid(arch=SMALL_HYBRID, compile_blocks=dict(scope='backbone')).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert model._whole_forward is None and model._told_eager
