"""The depthwise convolutions of a backbone, timed by the route a kernel can take, with their error.

FAN-Hybrid's train step spends a fifth of its GPU time in depthwise convolutions (the 7 x 7 ones of the
ConvNeXt stem, the 3 x 3 pairs of every FAN block's channel MLP) although they do a few percent of its
arithmetic: their kernels are memory- and latency-bound. This benchmark collects every depthwise
``Conv2d`` a backbone runs at a given input size (shape and number of calls, by forward hooks on one
inference pass) and times forward and forward + backward of each shape on each route:

- ``channels_last``: a channels_last input, cuDNN's NHWC depthwise kernels. What fan_mm's layers run.
- ``contiguous``: an NCHW input. On CUDA PyTorch takes its own depthwise kernel for it, not cuDNN.
- ``channels_last_no_cudnn``: a channels_last input with cuDNN switched off (PyTorch's own kernel after a
  layout copy).
- ``inductor_taps``: the convolution written as k x k shifted multiply-adds (``depthwise_conv2d_taps``)
  and compiled by ``torch.compile``: the form in which inductor could fuse it with the GELU, BatchNorm
  and LayerScale around it instead of calling a library kernel.
- ``triton``: fan_mm's Triton kernels on the channels_last input (``fan_mm.layers.depthwise_triton``).

Each row also gives every route's largest relative error against a float64 computation (output, input
gradient, weight gradient), so that speed is never read apart from exactness. The per-step total weights
each shape by its number of calls. Inputs are in the autocast dtype of ``precision`` (what the blocks
receive under autocast), weights float32 as parameters are. With ``cuda_graph=True`` each timed call is
the replay of a CUDA graph of the call, as inside fan_mm's compiled blocks, so that the figures are kernel
time without the launch and autograd overhead of an eager call (which is tens of microseconds, as long as
some of these kernels).
"""
import itertools
import math
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from fan_mm.benchmarks.precision import PRECISIONS, autocast, check_precision, prepare_device
from fan_mm.benchmarks.timing import time_fn

ROUTES = ('channels_last', 'contiguous', 'channels_last_no_cudnn', 'inductor_taps', 'triton')

# (channels, kernel, height, width): what one depthwise conv of a model sees (stride 1, same padding)
ConvShape = Tuple[int, int, int, int]


def depthwise_conv2d_taps(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` for an odd k x k ``weight`` (C, 1, k, k), as a
    sum of k * k shifted products, accumulated in at least float32.

    Under autocast, ``x``, ``weight`` and ``bias`` are rounded to the autocast dtype first and the result
    is returned in it, as autocast does for ``conv2d``."""
    channels, _, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f'depthwise_conv2d_taps: odd kernel sizes only (same padding), got {kh} x {kw}')
    height, width = x.shape[-2:]
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    else:
        dtype = torch.result_type(x, weight)
    acc = torch.promote_types(dtype, torch.float32)
    xp = F.pad(x.to(dtype), (kw // 2, kw // 2, kh // 2, kh // 2)).to(acc)
    w = weight.to(dtype).to(acc)
    out = None
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i:i + height, j:j + width] * w[:, 0, i, j].view(1, channels, 1, 1)
            out = tap if out is None else out + tap
    if bias is not None:
        out = out + bias.to(dtype).to(acc).view(1, channels, 1, 1)
    return out.to(dtype)


def is_depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
            == module.out_channels)


def collect_depthwise_shapes(model: nn.Module, images: torch.Tensor) -> Counter:
    """``Counter`` of (channels, kernel, height, width) of the depthwise convs one forward of ``model`` on
    ``images`` runs (batch left out); only stride-1, same-padding, odd-kernel convs are supported."""
    shapes: Counter = Counter()

    def check(name: str, module: nn.Conv2d) -> None:
        k = module.kernel_size[0]
        if (module.kernel_size != (k, k) or k % 2 == 0 or module.stride != (1, 1)
                or module.padding != (k // 2, k // 2) or module.dilation != (1, 1)):
            raise ValueError(f'depthwise conv {name}: only stride-1 same-padding square odd kernels are '
                             f'benchmarked, got kernel {module.kernel_size}, stride {module.stride}, '
                             f'padding {module.padding}, dilation {module.dilation}')

    def hook(module, args, _out):
        _, c, h, w = args[0].shape
        shapes[(c, module.kernel_size[0], h, w)] += 1

    convs = [(name, m) for name, m in model.named_modules() if is_depthwise(m)]
    for name, m in convs:
        check(name, m)
    handles = [m.register_forward_hook(hook) for _, m in convs]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


@contextmanager
def _cudnn(enabled: bool):
    before = torch.backends.cudnn.enabled
    torch.backends.cudnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.enabled = before


def _conv_fn(route: str) -> Callable:
    if route == 'inductor_taps':
        torch.compiler.reset()  # one fresh compilation per shape, within dynamo's recompile limit
        return torch.compile(depthwise_conv2d_taps, dynamic=False)
    if route == 'triton':
        from fan_mm.layers.depthwise_triton import depthwise_conv2d_nhwc
        return depthwise_conv2d_nhwc
    return lambda x, w, b: F.conv2d(x, w, b, padding=w.shape[-1] // 2, groups=w.shape[0])


def _cuda_graphed(fn: Callable[[], object]) -> Callable[[], None]:
    """A callable that replays a CUDA graph of one call of ``fn`` (warmed up on a side stream first, as
    ``torch.cuda.graph`` needs: lazy initialisation, autotuning and compilation happen there)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def _relative_error(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-300)).item()


def bench_shape(shape: ConvShape, route: str, batch: int, precision: str, device: torch.device,
                warmup: int, repeats: int, seed: int = 0, cuda_graph: bool = False) -> Dict:
    """Forward and forward + backward milliseconds of one conv shape on one route (each call replayed from
    a CUDA graph with ``cuda_graph``), and its errors."""
    if route not in ROUTES:
        raise ValueError(f'unknown route {route!r}; known: {list(ROUTES)}')
    channels, k, height, width = shape
    gen = torch.Generator().manual_seed(seed)
    in_dtype = PRECISIONS[precision] or torch.float32
    x64 = torch.randn(batch, channels, height, width, generator=gen, dtype=torch.float64)
    w64 = torch.randn(channels, 1, k, k, generator=gen, dtype=torch.float64) / k
    b64 = torch.randn(channels, generator=gen, dtype=torch.float64)
    g64 = torch.randn(batch, channels, height, width, generator=gen, dtype=torch.float64)
    fmt = torch.contiguous_format if route == 'contiguous' else torch.channels_last
    # the inputs the route sees, rounded to its dtype; the float64 reference works on the rounded values
    x = x64.to(device, in_dtype).contiguous(memory_format=fmt)
    g = g64.to(device, in_dtype).contiguous(memory_format=fmt)
    w = nn.Parameter(w64.to(device, torch.float32))
    b = nn.Parameter(b64.to(device, torch.float32))
    xr = x.double().requires_grad_()
    wr = w.detach().double().requires_grad_()
    ref = F.conv2d(xr, wr, b.detach().double(), padding=k // 2, groups=channels)
    ref_gx, ref_gw = torch.autograd.grad(ref, [xr, wr], g.double())

    conv = _conv_fn(route)
    xg = x.detach().requires_grad_()

    def forward():
        with autocast(device, precision), torch.no_grad():
            return conv(x, w, b)

    def train():
        xg.grad = w.grad = b.grad = None  # as a train step after zero_grad(set_to_none=True)
        with autocast(device, precision):
            y = conv(xg, w, b)
        y.backward(g)
        return y

    with _cudnn(route != 'channels_last_no_cudnn'):
        y = train()
        errors = dict(error_out=_relative_error(y.detach(), ref.detach()),
                      error_grad_input=_relative_error(xg.grad, ref_gx),
                      error_grad_weight=_relative_error(w.grad, ref_gw))
        # y's autograd graph holds the weights' gradient accumulators, made on this stream; a capture on the
        # graph's side stream must make its own (otherwise autograd synchronises the streams and the capture fails)
        del y
        if cuda_graph:
            forward, train = _cuda_graphed(forward), _cuda_graphed(train)
        fwd = time_fn(forward, device, warmup, repeats)
        step = time_fn(train, device, warmup, repeats)
    return dict(channels=channels, kernel=k, height=height, width=width, route=route,
                forward_ms=fwd['ms'], train_ms=step['ms'], train_ms_min=step['ms_min'], **errors)


def run_depthwise_benchmark(model: str = 'fan_s_hybrid', batch: int = 2, size: int = 896, precision: str = 'bf16',
                            device: str = 'cuda', routes: Sequence[str] = ROUTES, warmup: int = 5,
                            repeats: int = 20, log: Optional[Callable[[Dict], None]] = None,
                            cuda_graph: bool = False) -> Dict:
    """Every depthwise conv shape of ``model`` (a ``fan_mm.benchmarks.backbone.BACKBONES`` name) at
    ``batch`` x 3 x ``size`` x ``size``, timed on each of ``routes``. Returns the result (``kind``
    'depthwise', settings, ``env``, ``shapes``, ``rows``, ``totals``: milliseconds per train step and per
    inference of all of them on each route, calls weighted). ``cuda_graph``: time replays of CUDA graphs
    (a CUDA device only)."""
    from fan_mm.benchmarks.backbone import BACKBONES, build_backbone
    from fan_mm.utils.environment import collect_environment

    check_precision(precision)
    if model not in BACKBONES:
        raise ValueError(f'unknown model {model!r}; known: {sorted(BACKBONES)}')
    bad = [r for r in routes if r not in ROUTES]
    if bad:
        raise ValueError(f'unknown route(s) {bad}; known: {list(ROUTES)}')
    dev = prepare_device(device)
    if cuda_graph and dev.type != 'cuda':
        raise ValueError(f'cuda_graph: CUDA graphs need a CUDA device, got {dev}')
    net = build_backbone(model, size, dev)
    with autocast(dev, precision):
        shapes = collect_depthwise_shapes(net, torch.zeros(1, 3, size, size, device=dev))
    del net
    if not shapes:
        raise ValueError(f'{model} has no depthwise convolutions')
    rows: List[Dict] = []
    for shape, calls in sorted(shapes.items(), key=lambda kv: -kv[0][0] * kv[0][2] * kv[0][3]):
        for route in routes:
            row = dict(bench_shape(shape, route, batch, precision, dev, warmup, repeats, cuda_graph=cuda_graph),
                       calls_per_step=calls)
            rows.append(row)
            if log:
                log(row)
    totals = {route: dict(train_ms_per_step=math.fsum(r['train_ms'] * r['calls_per_step'] for r in rows
                                                      if r['route'] == route),
                          forward_ms_per_step=math.fsum(r['forward_ms'] * r['calls_per_step'] for r in rows
                                                        if r['route'] == route))
              for route in routes}
    return dict(kind='depthwise', model=model, batch=batch, size=size, precision=precision, warmup=warmup,
                repeats=repeats, cuda_graph=cuda_graph, env=collect_environment(device=str(dev)),
                shapes=[dict(channels=c, kernel=k, height=h, width=w, calls_per_step=n)
                        for (c, k, h, w), n in shapes.items()],
                rows=rows, totals=totals)


def depthwise_table(result: Dict) -> str:
    """The result as Markdown: one line per shape and route, then the per-step totals."""
    e = result['env']
    lines = [f"depthwise convs of {result['model']} at {result['batch']} x 3 x {result['size']} x {result['size']}, "
             f"{result['precision']}, {e.get('gpu', e.get('cpu', ''))}, torch {e.get('torch')}"
             + (', CUDA-graph replays' if result.get('cuda_graph') else ', eager calls'), '',
             '| C x k x H x W | calls / step | route | forward (ms) | fwd + bwd (ms) | error: out / grad in / '
             'grad w |', '|---|---|---|---|---|---|']
    for r in result['rows']:
        lines.append(f"| {r['channels']} x {r['kernel']}x{r['kernel']} x {r['height']} x {r['width']} | "
                     f"{r['calls_per_step']} | {r['route']} | {r['forward_ms']:.3f} | {r['train_ms']:.3f} | "
                     f"{r['error_out']:.1e} / {r['error_grad_input']:.1e} / {r['error_grad_weight']:.1e} |")
    lines += ['', '| route | all depthwise convs of a train step (ms) | of an inference (ms) |', '|---|---|---|']
    for route, t in result['totals'].items():
        lines.append(f"| {route} | {t['train_ms_per_step']:.2f} | {t['forward_ms_per_step']:.2f} |")
    return '\n'.join(lines)


# launch settings of fan_mm's streaming Triton kernel that sweep_triton_launch tries (every combination):
# around the winners of an earlier, wider sweep (rows 2-16, columns up to 32, up to 8 warps; no setting
# with 32 columns or 8 warps was best for any shape), with bands of 32 rows, which the prefetching kernel
# chose for most shapes
SWEEP_SPACE = dict(rows=(4, 8, 16, 32), block_w=(8, 16), block_c=(32, 64, 128), num_warps=(2, 4))


def sweep_triton_launch(model: str = 'fan_s_hybrid', batch: int = 2, sizes: Sequence[Tuple[int, int]] = ((896, 896),),
                        precision: str = 'bf16', device: str = 'cuda', warmup: int = 3, repeats: int = 10,
                        log: Optional[Callable[[str], None]] = None,
                        kernel_sizes: Optional[Sequence[int]] = None) -> Dict:
    """How ``fan_mm.layers.depthwise_triton``'s launch settings were chosen: the forward of every depthwise
    shape ``model`` runs at each of ``sizes`` (height, width), timed as CUDA-graph replays on the streaming
    kernel at every setting of ``SWEEP_SPACE`` (bias included) and on cuDNN with its bias. ``kernel_sizes``:
    only the shapes of these kernel sizes. ``chosen``: per kernel size, the streaming setting with the least
    total time over all shapes of that size, each weighted by its calls per step."""
    from fan_mm.benchmarks.backbone import BACKBONES, build_backbone
    from fan_mm.layers import depthwise_triton as dt
    from fan_mm.utils.environment import collect_environment

    check_precision(precision)
    if model not in BACKBONES:
        raise ValueError(f'unknown model {model!r}; known: {sorted(BACKBONES)}')
    dev = prepare_device(device)
    if dev.type != 'cuda' or not dt.triton_available():
        raise ValueError(f'sweep_triton_launch times Triton kernels on a CUDA device, got {dev}')
    dtype = PRECISIONS[precision] or torch.float32
    shapes: Counter = Counter()
    for height, width in sizes:
        net = build_backbone(model, max(height, width), dev)
        with autocast(dev, precision):
            shapes.update(collect_depthwise_shapes(net, torch.zeros(1, 3, height, width, device=dev)))
        del net
    if kernel_sizes:
        missing = sorted(set(kernel_sizes) - {k for _, k, _, _ in shapes})
        if missing:
            raise ValueError(f'{model} runs no depthwise convs of kernel size {missing}; it runs '
                             f'{sorted({k for _, k, _, _ in shapes})}')
        shapes = Counter({s: n for s, n in shapes.items() if s[1] in kernel_sizes})
    settings = [dict(zip(SWEEP_SPACE, values)) for values in itertools.product(*SWEEP_SPACE.values())]
    gen = torch.Generator().manual_seed(0)
    rows = []
    for (c, k, h, w), calls in sorted(shapes.items()):
        x = torch.randn(batch, c, h, w, generator=gen).to(dev, dtype).contiguous(memory_format=torch.channels_last)
        weight = (torch.randn(c, 1, k, k, generator=gen) / k).to(dev, dtype)
        bias = torch.randn(c, generator=gen).to(dev, dtype)
        ref = F.conv2d(x.double(), weight.double(), bias.double(), padding=k // 2, groups=c)

        def timed(fn):
            return time_fn(_cuda_graphed(fn), dev, warmup, repeats)['ms']

        row = dict(channels=c, kernel=k, height=h, width=w, calls_per_step=calls,
                   cudnn_ms=timed(lambda: F.conv2d(x, weight, bias, padding=k // 2, groups=c)), stream=[])
        for s in settings:
            if (s['block_c'] > max(32, dt.triton.next_power_of_2(c))
                    or s['block_w'] > max(8, dt.triton.next_power_of_2(w))):
                continue  # clipped to the map: the same launch as a smaller setting
            launch = tuple(s.values())
            error = _relative_error(dt._forward(x, weight, bias, launch=launch), ref)
            if error > 1e-2:  # bfloat16 rounding is 4e-3
                raise RuntimeError(f'streaming kernel {s} on {c} x {k}x{k} x {h} x {w}: relative error {error:.1e}')
            row['stream'].append(dict(s, ms=timed(lambda: dt._forward(x, weight, bias, launch=launch))))
        row['stream'].sort(key=lambda e: e['ms'])
        rows.append(row)
        if log:
            log(f"{c} x {k}x{k} x {h} x {w}: cuDNN {row['cudnn_ms']:.4f} ms, streaming best {row['stream'][0]}")
    chosen = choose_launch(rows)
    return dict(kind='depthwise_triton_sweep', model=model, batch=batch, sizes=[list(s) for s in sizes],
                kernel_sizes=sorted({r['kernel'] for r in rows}), precision=precision, warmup=warmup, repeats=repeats,
                space={k: list(v) for k, v in SWEEP_SPACE.items()},
                env=collect_environment(device=str(dev)), rows=rows, chosen=chosen)


def choose_launch(rows: Sequence[Dict]) -> Dict[int, Dict]:
    """Per kernel size of ``rows`` (``sweep_triton_launch``'s), the streaming setting with the least total
    time over every shape of that size, each shape's time weighted by its calls per step; a setting not
    timed on every shape (clipped to a smaller one there) does not compete. Also the calls-weighted totals
    of cuDNN and, where the rows have its times (older sweeps), of the row kernel that the
    7x7 convs ran until the sweep found the streaming kernel faster."""
    chosen = {}
    for k in sorted({r['kernel'] for r in rows}):
        group = [r for r in rows if r['kernel'] == k]
        totals: Dict[tuple, List[float]] = {}
        for r in group:
            for e in r['stream']:
                totals.setdefault(tuple(e[key] for key in SWEEP_SPACE), []).append(e['ms'] * r['calls_per_step'])
        complete = {key: math.fsum(v) for key, v in totals.items() if len(v) == len(group)}
        best = min(complete, key=complete.get)
        chosen[k] = dict(zip(SWEEP_SPACE, best), weighted_ms=complete[best],
                         cudnn_weighted_ms=math.fsum(r['cudnn_ms'] * r['calls_per_step'] for r in group))
        if all('row_kernel_ms' in r for r in group):
            chosen[k]['row_kernel_weighted_ms'] = math.fsum(r['row_kernel_ms'] * r['calls_per_step'] for r in group)
    return chosen


def sweep_table(result: Dict) -> str:
    """The sweep's choice per kernel size as Markdown."""
    lines = ['| kernel | chosen (rows, columns, channels, warps) | streaming, calls-weighted (ms) | row kernel | '
             'cuDNN with bias |', '|---|---|---|---|---|']
    for k, c in result['chosen'].items():
        row_kernel = c.get('row_kernel_weighted_ms')
        lines.append(f"| {k}x{k} | ({c['rows']}, {c['block_w']}, {c['block_c']}, {c['num_warps']}) | "
                     f"{c['weighted_ms']:.3f} | {'-' if row_kernel is None else f'{row_kernel:.3f}'} | "
                     f"{c['cudnn_weighted_ms']:.3f} |")
    return '\n'.join(lines)
