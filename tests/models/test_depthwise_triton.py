"""fan_mm's Triton depthwise convolution (``fan_mm.layers.depthwise_triton``) against ``F.conv2d``.

On a CPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``, which must be set before Triton
compiles anything, hence a fresh interpreter per check); on a GPU the compiled kernels run against cuDNN.
"""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

triton = pytest.importorskip('triton')

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (batch, channels, height, width, k): every kernel size the weight-gradient kernel has accumulators for,
# channels that do not fill a block, maps narrower than a tile and wider than one, a 1-pixel map, maps taller
# than a band of the streaming kernel's output rows
SHAPES = [(2, 5, 7, 9, 3), (1, 70, 3, 20, 7), (1, 3, 6, 5, 5), (2, 4, 3, 3, 1), (1, 130, 5, 17, 3),
          (1, 6, 1, 1, 7), (2, 8, 37, 6, 3), (1, 4, 18, 5, 7)]

CHECK = textwrap.dedent('''
    import json, sys, torch, torch.nn.functional as F
    from fan_mm.layers.conv import depthwise_conv
    from fan_mm.layers.depthwise_triton import _forward, depthwise_conv2d_nhwc
    torch.manual_seed(0)
    errors = []
    def error(a, r):
        return (a.double() - r).abs().max().item() / (r.abs().max().item() or 1.0)
    for n, c, h, w, k in json.loads(sys.argv[1]):
        conv = depthwise_conv(c, k).double()
        x = torch.randn(n, c, h, w, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        g = torch.randn(n, c, h, w, dtype=torch.float64)
        def run(fn, dtype):
            conv.zero_grad()
            module = depthwise_conv(c, k).to(dtype)
            module.load_state_dict(conv.state_dict())
            xr = x.detach().to(dtype).requires_grad_()
            y = fn(module, xr)
            y.backward(g.to(dtype))
            return [y.detach(), xr.grad, module.weight.grad, module.bias.grad], y
        ref, _ = run(lambda m, t: m(t), torch.float64)
        ours, y = run(lambda m, t: depthwise_conv2d_nhwc(t, m.weight, m.bias), torch.float32)
        compiled, _ = run(torch.compile(lambda m, t: depthwise_conv2d_nhwc(t, m.weight, m.bias),
                                        backend='aot_eager'), torch.float32)
        assert y.is_contiguous(memory_format=torch.channels_last)
        for name, a, b, r in zip(('out', 'grad_input', 'grad_weight', 'grad_bias'), ours, compiled, ref):
            errors.append([n, c, h, w, k, name, error(a, r), error(b, r)])
        # the streaming kernel in bands of 5 output rows and small tiles (many programs along every axis):
        # forward, input gradient and the bias gradient it sums (k <= 3 use that sum; checked at every k)
        weight, bias = conv.weight.float(), conv.bias.float()
        grad_input, grad_bias = _forward(g.float(), weight, None, flip=True, launch=(5, 8, 16, 4), sum_input=True)
        for name, (a, r) in dict(stream_out=(_forward(x.float(), weight, bias, launch=(5, 8, 16, 4)), ref[0]),
                                 stream_grad_input=(grad_input, ref[1]),
                                 stream_grad_bias=(grad_bias, ref[3])).items():
            errors.append([n, c, h, w, k, name, error(a, r), error(a, r)])
    # no bias: the output and the input and weight gradients (the bias is not read)
    conv = depthwise_conv(6, 3).double()
    conv.bias = None
    x = torch.randn(2, 6, 9, 7, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    xr = x.float().requires_grad_()
    wr = conv.weight.detach().float().requires_grad_()
    y = depthwise_conv2d_nhwc(xr, wr)
    y.backward(torch.ones_like(y))
    xd = x.detach().requires_grad_()
    yd = conv(xd)
    yd.backward(torch.ones_like(yd))
    for name, a, r in (('nobias_out', y.detach(), yd.detach()), ('nobias_grad_input', xr.grad, xd.grad),
                       ('nobias_grad_weight', wr.grad, conv.weight.grad)):
        errors.append([2, 6, 9, 7, 3, name, error(a, r), error(a, r)])
    # autocast: the input and weight are rounded to bfloat16 and the result is bfloat16, as for conv2d
    conv = depthwise_conv(8, 3)
    x = torch.randn(1, 8, 5, 6).contiguous(memory_format=torch.channels_last)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        y = depthwise_conv2d_nhwc(x, conv.weight, conv.bias)
        ref = conv(x)
    assert y.dtype == ref.dtype == torch.bfloat16, (y.dtype, ref.dtype)
    bf16 = ((y.double() - ref.double()).abs().max() / ref.double().abs().max()).item()
    for bias in (conv.bias.detach().clone().requires_grad_(), None):
        torch.library.opcheck(torch.ops.fan_mm.depthwise_conv2d_nhwc.default,
                              (x, conv.weight.detach().clone().requires_grad_(), bias))
    print(json.dumps(dict(errors=errors, bf16=bf16)))
''')


def _interpreted(script: str, *args: str) -> str:
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    done = subprocess.run([sys.executable, '-c', script, *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


# A loop with a bound passed at run time, as the weight-gradient kernel has. Triton 3.6's interpreter fails on
# it under NumPy 2.4 (it converts a 1-element array with int(), which NumPy no longer allows); 3.7 runs it.
PROBE = textwrap.dedent('''
    import torch, triton, triton.language as tl
    @triton.jit
    def count(x_ptr, n):
        total = 0.
        for i in range(0, n):
            total += tl.load(x_ptr + i)
        tl.store(x_ptr, total)
    x = torch.ones(3)
    count[(1,)](x, 3)
    print(x[0].item())
''')


def _interpreter_runs_loops() -> bool:
    """False only for that known failure; any other failure of the probe fails the test."""
    try:
        assert float(_interpreted(PROBE)) == 3.0
        return True
    except AssertionError as e:
        if 'only 0-dimensional arrays can be converted' in str(e):
            return False
        raise


def test_forward_and_gradients_equal_conv2d_in_the_interpreter():
    import json
    import numpy
    import triton
    if not _interpreter_runs_loops():
        pytest.skip(f"Triton {triton.__version__}'s interpreter cannot run a loop with a run-time bound under "
                    f'NumPy {numpy.__version__} (Triton 3.7 can); the kernels are checked on a GPU by '
                    f'test_cuda_kernels_equal_float64')
    result = json.loads(_interpreted(CHECK, json.dumps(SHAPES)))
    # float32 accumulation against float64: a few float32 ulps of the largest value
    bad = [e for e in result['errors'] if max(e[6], e[7]) > 1e-5]
    assert not bad, bad
    assert len(result['errors']) == 7 * len(SHAPES) + 3
    assert result['bf16'] < 1e-2  # both round the same bfloat16 inputs; the sums differ in order only


def test_bad_inputs_are_named():
    from fan_mm.layers.depthwise_triton import depthwise_conv2d_nhwc
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match=r'odd k <= 7.*\(4, 1, 4, 4\)'):
        depthwise_conv2d_nhwc(x, torch.randn(4, 1, 4, 4))
    with pytest.raises(ValueError, match=r'odd k <= 7.*\(4, 1, 9, 9\)'):
        depthwise_conv2d_nhwc(x, torch.randn(4, 1, 9, 9))
    with pytest.raises(ValueError, match=r'input \(1, 4, 5, 5\)'):
        depthwise_conv2d_nhwc(x, torch.randn(3, 1, 3, 3))
    if os.environ.get('TRITON_INTERPRET') != '1':
        with pytest.raises(ValueError, match='CUDA tensors.*TRITON_INTERPRET=1.*cpu'):
            depthwise_conv2d_nhwc(x, torch.randn(4, 1, 3, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('shape', [(2, 1536, 56, 56, 3), (2, 128, 224, 224, 7), (2, 256, 112, 112, 7)])
def test_cuda_kernels_equal_float64(shape):
    """FAN-S-Hybrid's depthwise shapes at 896x896: the compiled kernels in float32 against float64 on the GPU.
    (Not float32 cuDNN, which PyTorch lets use TF32 by default: against it the 7x7 weight gradient differed by
    4e-4 on an H100.)"""
    from fan_mm.layers.conv import depthwise_conv
    from fan_mm.layers.depthwise_triton import depthwise_conv2d_nhwc
    n, c, h, w, k = shape
    torch.manual_seed(0)
    conv = depthwise_conv(c, k).cuda().double()
    x = torch.randn(n, c, h, w, device='cuda', dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    g = torch.randn(n, c, h, w, device='cuda', dtype=torch.float64)
    outs = []
    # the 3x3 weight gradient comes from cuDNN: in float32 without TF32 here
    with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False):
        for dtype, fn in ((torch.float64, lambda m, t: m(t)),
                          (torch.float32, lambda m, t: depthwise_conv2d_nhwc(t, m.weight, m.bias))):
            module = depthwise_conv(c, k).cuda().to(dtype)
            module.load_state_dict(conv.state_dict())
            xr = x.detach().to(dtype).requires_grad_()
            y = fn(module, xr)
            y.backward(g.to(dtype))
            outs.append([y.detach(), xr.grad, module.weight.grad, module.bias.grad])
    for name, a, ref in zip(('out', 'grad_input', 'grad_weight', 'grad_bias'), outs[1], outs[0]):
        error = ((a.double() - ref).abs().max() / ref.abs().max()).item()
        assert error < 1e-5, (name, error)


def test_route_depthwise_to_triton_swaps_only_the_7x7_depthwise_convs():
    """``benchmark_backbone.py``'s ``+triton7``: FAN-T-Hybrid's ConvNeXt stem convs become the Triton module,
    the channel MLPs' 3x3 convs and every other conv stay; parameters, state_dict and (off CUDA) values too."""
    from fan_mm.benchmarks.backbone import build_backbone
    from fan_mm.layers.depthwise_triton import TritonDepthwiseConv2d, route_depthwise_to_triton
    torch.manual_seed(0)
    plain = build_backbone('fan_t_hybrid', 64, torch.device('cpu')).eval()
    routed = build_backbone('fan_t_hybrid', 64, torch.device('cpu')).eval()
    routed.load_state_dict(plain.state_dict())
    assert route_depthwise_to_triton(routed, kernel_sizes=(7,)) > 0  # what +triton7 does (on CUDA)
    swapped = [m for m in routed.modules() if isinstance(m, TritonDepthwiseConv2d)]
    sevens = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (7, 7)
              and m.groups == m.in_channels > 1]
    assert len(swapped) == len(sevens) > 0
    assert all(m.kernel_size == (7, 7) for m in swapped)
    assert any(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.groups > 1
               and not isinstance(m, TritonDepthwiseConv2d) for m in routed.modules())
    assert list(routed.state_dict()) == list(plain.state_dict())
    x = torch.randn(1, 3, 64, 64)
    for a, b in zip(routed(x), plain(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'odd and <= 7.*\[4\]'):
        route_depthwise_to_triton(plain, kernel_sizes=(4,))
    with pytest.raises(ValueError, match=r'tv_resnet50\+triton7.*no 7x7 depthwise'):
        build_backbone('tv_resnet50+triton7', 64, torch.device('cpu'))
    # off CUDA the routed convs run F.conv2d: a benchmark row named +triton7 there would time the plain convs
    with pytest.raises(ValueError, match=r'fan_t_hybrid\+triton7: \+triton7 runs the Triton kernels on CUDA '
                                         r'devices only, not on cpu'):
        build_backbone('fan_t_hybrid+triton7', 64, torch.device('cpu'))
    # +triton routes every depthwise conv, the 3x3 ones of the channel MLPs too
    with pytest.raises(ValueError, match=r'tv_resnet50\+triton: .* has no depthwise convolutions for \+triton'):
        build_backbone('tv_resnet50+triton', 64, torch.device('cpu'))
    with pytest.raises(ValueError, match=r'fan_t_hybrid\+triton: \+triton runs the Triton kernels on CUDA'):
        build_backbone('fan_t_hybrid+triton', 64, torch.device('cpu'))
    everything = build_backbone('fan_t_hybrid', 64, torch.device('cpu'))
    depthwise = [m for m in everything.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == m.in_channels > 1]
    assert route_depthwise_to_triton(everything, kernel_sizes=(1, 3, 5, 7)) == len(depthwise) > len(sevens)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_new_input_sizes_compile_no_new_kernel_variant():
    """Detection's input sizes change from batch to batch (multi-scale training, images of every aspect): after
    the first size, maps of other sizes, odd or even, and other batch sizes run the kernels compiled for it.
    (Triton would otherwise compile a variant per size class; ``do_not_specialize`` on the sizes prevents
    it. Widths of 16 and more, as every depthwise map of a detection input is; narrower maps take narrower
    tiles, a variant of their own.)"""
    from fan_mm.layers import depthwise_triton as dt
    from fan_mm.layers.conv import depthwise_conv
    kernels = [dt._dw_forward_stream_kernel, dt._dw_weight_grad_kernel]
    if not all(isinstance(getattr(k, 'device_caches', None), dict) for k in kernels):
        pytest.skip('this Triton keeps its compiled kernels elsewhere than JITFunction.device_caches')

    def variants():  # compiled kernels, all devices; the first item of a device's entry is its kernel cache
        return sum(len(entry[0]) for k in kernels for entry in k.device_caches.values())

    convs = [depthwise_conv(64, k).cuda() for k in (3, 7)]

    def step(n, h, w):
        x = torch.randn(n, 64, h, w, device='cuda', requires_grad=True).contiguous(memory_format=torch.channels_last)
        for conv in convs:
            dt.depthwise_conv2d_nhwc(x, conv.weight, conv.bias).sum().backward()
        torch.cuda.synchronize()

    step(2, 24, 40)
    first = variants()
    assert first > 0
    for n, h, w in ((2, 25, 41), (1, 33, 17), (2, 50, 62), (3, 100, 168)):
        step(n, h, w)
        assert variants() == first, (n, h, w)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_routed_module_runs_the_triton_operator_on_cuda():
    from fan_mm.layers.conv import depthwise_conv
    from fan_mm.layers.depthwise_triton import route_depthwise_to_triton
    conv = torch.nn.Sequential(depthwise_conv(32, 7)).cuda()
    ref = depthwise_conv(32, 7).cuda()
    ref.load_state_dict(conv[0].state_dict())
    assert route_depthwise_to_triton(conv) == 1
    x = torch.randn(2, 32, 20, 24, device='cuda', dtype=torch.float64)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        y = conv.float()(x.float())
    assert any('_dw_forward_stream_kernel' in e.name for e in prof.events())
    expected = ref.double()(x)
    assert ((y.double() - expected).abs().max() / expected.abs().max()).item() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_routed_convs_stay_inside_cuda_graphs():
    # the route is for the compiled blocks: their CUDA graphs must record the operator's kernels (a graph
    # that inductor runs without CUDA graphs launches every kernel from the host)
    from torch._dynamo.utils import counters
    from fan_mm.layers.conv import depthwise_conv
    from fan_mm.layers.depthwise_triton import route_depthwise_to_triton
    torch.manual_seed(0)
    block = torch.nn.Sequential(depthwise_conv(32, 7), torch.nn.GELU(), depthwise_conv(32, 7)).cuda()
    assert route_depthwise_to_triton(block) == 2
    x = torch.randn(2, 32, 20, 24, device='cuda').contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    expected = block(x)
    expected.square().sum().backward()
    expected_grads = [x.grad.clone()] + [p.grad.clone() for p in block.parameters()]
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(block, mode='reduce-overhead')
    for _ in range(3):  # recorded at the second or third call
        x.grad = None
        block.zero_grad(set_to_none=True)
        torch.compiler.cudagraph_mark_step_begin()
        y = compiled(x)
        y.square().sum().backward()
    assert counters['inductor']['cudagraph_skips'] == 0
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip([x.grad] + [p.grad for p in block.parameters()], expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _shipped_variants():
    from fan_mm.benchmarks.machine_code import shipped_variants
    return {v.name: v for v in shipped_variants()}


@pytest.mark.parametrize('name', ['3x3 forward', '3x3 input gradient', '7x7 forward', '7x7 input gradient',
                                  '7x7 weight gradient'])
def test_shipped_kernels_loops_keep_one_layout(name):
    """At the shipped launch settings no kernel's loop converts a tile between layouts. A conversion goes
    through shared memory between barriers: at the 3x3 setting shipped until 2026-12-08 the weights' 1-D
    loads took another layout than the tiles, nine conversions with 18 (Triton 3.6) or 36 (3.9) barriers in every row
    (docs/benchmarks.md, "The forward with its rows prefetched"). Compiled for sm_90 on the CPU."""
    from fan_mm.benchmarks.machine_code import compile_for_gpu, loop_layout_conversions
    if not hasattr(triton.compiler, 'ASTSource'):
        pytest.skip(f'Triton {triton.__version__} has no triton.compiler.ASTSource')
    v = _shipped_variants()[name]
    types = {n: '*bf16' if t == 'input' else t for n, t in v.pointers.items()}
    compiled = compile_for_gpu(v.kernel, types, v.constants, v.num_warps, capability=90)
    assert loop_layout_conversions(compiled.asm['ttgir']) == 0, (name, v.launch)


def test_machine_code_variants_are_what_the_operator_launches(monkeypatch):
    """The variants that tools/analysis/triton_machine_code.py compiles are the constants and warps the
    operator launches its kernels with for FAN-Hybrid's 3x3 and 7x7 convs (forward and backward), recorded
    from the launches (on CPU tensors, nothing run)."""
    from fan_mm.layers import depthwise_triton as dt
    expected = set()
    for v in _shipped_variants().values():
        constants = {n: c for n, c in v.constants.items() if n != 'swc'}  # unit stride: passed as 1
        expected.add((v.kernel, tuple(sorted(constants.items())), v.num_warps))
    launched = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            def launch(*args, num_warps, **constants):
                launched.append((self.kernel, dict(constants), num_warps))
            return launch

    monkeypatch.setattr(dt, '_dw_forward_stream_kernel', Recorder(dt._dw_forward_stream_kernel))
    monkeypatch.setattr(dt, '_dw_weight_grad_kernel', Recorder(dt._dw_weight_grad_kernel))
    for c, k, size in ((1536, 3, 56), (128, 7, 224), (256, 7, 112)):
        x = torch.zeros(1, c, size, size)
        weight = torch.zeros(c, 1, k, k)
        dt._forward(x, weight, torch.zeros(c))
        dt._depthwise_backward_op(x, x, weight)
    assert {(kernel, tuple(sorted(c.items())), w) for kernel, c, w in launched} == expected
