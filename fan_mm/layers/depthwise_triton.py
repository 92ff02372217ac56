"""Depthwise convolution (odd k x k, stride 1, same padding) on channels_last maps, as Triton kernels.

cuDNN's NHWC depthwise kernels run FAN-Hybrid's depthwise convolutions at a fifth of the memory bandwidth
(``docs/benchmarks.md``, "By kind of kernel"): a 1536 x 56 x 56 bf16 map takes 59 us where one pass over it
takes about 12 us. These kernels are laid out for that bound:

- forward: one program per output row and block of columns x channels; the k x k taps are loads of the
  input tile shifted by the tap, which the column shifts find in L1 (channels are the contiguous axis, so
  every load is coalesced); float32 accumulation;
- input gradient: the same kernel on the output gradient with the kernel flipped (stride 1, same padding);
- weight gradient: one program per chunk of rows, kernel row and block of channels; each gradient tile is
  loaded once per kernel row and multiplied with the k input tiles of that row's column taps into k
  accumulator tiles, summed over their columns once at the end; float32 partial sums per chunk, added up in
  a fixed order afterwards (deterministic).

``depthwise_conv2d_nhwc`` is a ``torch.library`` operator with its autograd formula, so that it stays inside
compiled graphs and CUDA graphs as one opaque call, as cuDNN's convolution does.

Status (December 2026): a route of ``tools/analysis/benchmark_depthwise.py`` (``--routes channels_last
triton``) and of ``benchmark_backbone.py`` (``+triton7``), exact to float32 rounding
(``tests/models/test_depthwise_triton.py``: against float64 on a GPU, and in Triton's interpreter on a CPU).
On an H100 it beats cuDNN on FAN-Hybrid's 7x7 stem convolutions and loses on the 3x3 ones; with the 7x7 ones
routed here, FAN-S-Hybrid's compiled train step does 4% less GPU work and its inference is 6-9% faster
(``docs/benchmarks.md``, "A triton route"). The models run cuDNN until the route has run with the detection
configs' dynamic input sizes.
"""
import os
from typing import Optional

import torch
from torch import nn

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs without Triton: the operator is unavailable, nothing else changes
    triton = None

__all__ = ['depthwise_conv2d_nhwc', 'route_depthwise_to_triton', 'TritonDepthwiseConv2d', 'triton_available']


def triton_available() -> bool:
    return triton is not None


if triton is not None:
    @triton.jit
    def _dw_forward_kernel(x_ptr, w_ptr, y_ptr, H, W, C, sxn, sxh, sxw, syn, syh, syw,
                           K: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
        # x, y: (N, H, W, C) with unit channel stride; w: (K * K, C) float32, tap-major
        row = tl.program_id(0)
        n = row // H
        h = row % H
        cols = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
        chans = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        chan_ok = chans < C
        pad: tl.constexpr = K // 2
        acc = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        x_base = x_ptr + n.to(tl.int64) * sxn
        for i in tl.static_range(K):
            hi = h + i - pad
            his = cols * 0 + hi  # the row as a vector: the interpreter cannot mix a scalar bool into a mask
            row_ok = (his >= 0) & (his < H)
            for j in tl.static_range(K):
                wi = cols + (j - pad)
                mask = ((wi >= 0) & (wi < W) & row_ok)[:, None] & chan_ok[None, :]
                xv = tl.load(x_base + hi * sxh + wi[:, None] * sxw + chans[None, :], mask=mask, other=0.)
                wv = tl.load(w_ptr + (i * K + j) * C + chans, mask=chan_ok, other=0.)
                acc += xv.to(tl.float32) * wv[None, :]
        out_mask = (cols < W)[:, None] & chan_ok[None, :]
        tl.store(y_ptr + n.to(tl.int64) * syn + h * syh + cols[:, None] * syw + chans[None, :],
                 acc.to(y_ptr.dtype.element_ty), mask=out_mask)

    @triton.jit
    def _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, shift):
        wi = cols + shift
        mask = ((wi >= 0) & (wi < W))[:, None] & g_mask
        xv = tl.load(x_base + wi[:, None] * sxw + chans[None, :], mask=mask, other=0.)
        return gv * xv.to(tl.float32)

    @triton.jit
    def _dw_weight_grad_kernel(x_ptr, g_ptr, part_ptr, H, W, C, ROWS, ROWS_PER_PROGRAM,
                               sxn, sxh, sxw, sgn, sgh, sgw,
                               K: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
        # part: (programs along rows, K, K, C) float32; row r = n * H + h. One accumulator tile per column tap
        # (up to 7, named: Triton has no lists of tensors), summed over the tile's columns once at the end,
        # so that the loop does only loads and multiply-adds.
        chunk = tl.program_id(0)
        i = tl.program_id(1)  # kernel row
        chans = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        chan_ok = chans < C
        pad: tl.constexpr = K // 2
        acc0 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        acc1 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        acc2 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        acc3 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        acc4 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        acc5 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        acc6 = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        first = chunk * ROWS_PER_PROGRAM
        for r in range(first, tl.minimum(first + ROWS_PER_PROGRAM, ROWS)):
            n = r // H
            h = r % H
            hi = h + i - pad
            g_base = g_ptr + n.to(tl.int64) * sgn + h * sgh
            x_base = x_ptr + n.to(tl.int64) * sxn + hi * sxh
            for w0 in range(0, W, BLOCK_W):
                cols = w0 + tl.arange(0, BLOCK_W)
                his = cols * 0 + hi  # the row as a vector: the interpreter cannot mix a scalar bool into a mask
                g_mask = ((cols < W) & (his >= 0) & (his < H))[:, None] & chan_ok[None, :]
                gv = tl.load(g_base + cols[:, None] * sgw + chans[None, :], mask=g_mask, other=0.).to(tl.float32)
                acc0 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 0 - pad)
                if K > 1:
                    acc1 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 1 - pad)
                    acc2 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 2 - pad)
                if K > 3:
                    acc3 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 3 - pad)
                    acc4 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 4 - pad)
                if K > 5:
                    acc5 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 5 - pad)
                    acc6 += _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, 6 - pad)
        out = part_ptr + ((chunk.to(tl.int64) * K + i) * K) * C + chans
        tl.store(out, tl.sum(acc0, axis=0), mask=chan_ok)
        if K > 1:
            tl.store(out + C, tl.sum(acc1, axis=0), mask=chan_ok)
            tl.store(out + 2 * C, tl.sum(acc2, axis=0), mask=chan_ok)
        if K > 3:
            tl.store(out + 3 * C, tl.sum(acc3, axis=0), mask=chan_ok)
            tl.store(out + 4 * C, tl.sum(acc4, axis=0), mask=chan_ok)
        if K > 5:
            tl.store(out + 5 * C, tl.sum(acc5, axis=0), mask=chan_ok)
            tl.store(out + 6 * C, tl.sum(acc6, axis=0), mask=chan_ok)


MAX_KERNEL = 7  # the weight-gradient kernel's accumulators


def _blocks(channels: int, width: int, k: int = 3):
    # 7 accumulator tiles of 16 x 64 float32 are 56 registers a thread at 4 warps
    block_c = min(128 if k <= 3 else 64, triton.next_power_of_2(channels))
    block_w = min(16, triton.next_power_of_2(width))
    return block_w, block_c


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _taps(weight: torch.Tensor) -> torch.Tensor:
    """(C, 1, k, k) -> (k * k, C) float32, tap-major: the kernels load one tap's channels contiguously."""
    c, _, k, _ = weight.shape
    return weight.reshape(c, k * k).t().float().contiguous()


def _forward(x: torch.Tensor, taps: torch.Tensor, k: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x = _nhwc(x)
    y = torch.empty_like(x, memory_format=torch.channels_last)
    block_w, block_c = _blocks(c, w)
    grid = (n * h, triton.cdiv(w, block_w), triton.cdiv(c, block_c))
    # channels_last strides of an NCHW tensor: (H*W*C, 1, W*C, C)
    _dw_forward_kernel[grid](x, taps, y, h, w, c, x.stride(0), x.stride(2), x.stride(3),
                             y.stride(0), y.stride(2), y.stride(3), K=k, BLOCK_W=block_w, BLOCK_C=block_c,
                             num_warps=4)
    return y


def _weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x, grad = _nhwc(x), _nhwc(grad)
    rows = n * h
    block_w, block_c = _blocks(c, w, k)
    c_blocks = triton.cdiv(c, block_c)
    # enough programs to fill the GPU (about 1,000), each summing a few rows
    per_program = max(1, triton.cdiv(rows * k * c_blocks, 1024))
    chunks = triton.cdiv(rows, per_program)
    part = torch.empty(chunks, k, k, c, device=x.device, dtype=torch.float32)
    _dw_weight_grad_kernel[(chunks, k, c_blocks)](
        x, grad, part, h, w, c, rows, per_program, x.stride(0), x.stride(2), x.stride(3),
        grad.stride(0), grad.stride(2), grad.stride(3), K=k, BLOCK_W=block_w, BLOCK_C=block_c, num_warps=4)
    return part.sum(0).permute(2, 0, 1).unsqueeze(1)  # (C, 1, k, k)


@torch.library.custom_op('fan_mm::depthwise_conv2d_nhwc', mutates_args=())
def _depthwise_op(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _forward(x, _taps(weight), weight.shape[-1])


@_depthwise_op.register_fake
def _(x, weight):
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op('fan_mm::depthwise_conv2d_nhwc_backward', mutates_args=())
def _depthwise_backward_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    k = weight.shape[-1]
    grad_x = _forward(grad, _taps(weight.flip(2, 3)), k)
    grad_w = torch.empty_like(weight)  # the weight's strides, as the fake says
    grad_w.copy_(_weight_grad(x, grad, k))
    return [grad_x, grad_w]


@_depthwise_backward_op.register_fake
def _(grad, x, weight):
    return [torch.empty_like(x, memory_format=torch.channels_last), torch.empty_like(weight)]


def _setup_context(ctx, inputs, output):
    x, weight = inputs
    ctx.save_for_backward(x, weight)


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x, grad_w = _depthwise_backward_op(grad, x, weight)
    return grad_x, grad_w


_depthwise_op.register_autograd(_backward, setup_context=_setup_context)


def depthwise_conv2d_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` for an odd k x k ``weight`` (C, 1, k, k) on a
    CUDA tensor, by the Triton kernels above; the result is channels_last. Under autocast the input and the
    weight are rounded to the autocast dtype first, as autocast does for ``conv2d``; accumulation is float32."""
    if triton is None:
        raise RuntimeError('depthwise_conv2d_nhwc needs Triton, which is not installed')
    c, one, kh, kw = weight.shape
    if one != 1 or x.shape[1] != c or kh != kw or kh % 2 == 0 or kh > MAX_KERNEL:
        raise ValueError(f'depthwise_conv2d_nhwc: a depthwise (C, 1, k, k) weight with odd k <= {MAX_KERNEL} and '
                         f'an input of C channels, got weight {tuple(weight.shape)} and input {tuple(x.shape)}')
    if not x.is_cuda and os.environ.get('TRITON_INTERPRET') != '1':
        raise ValueError(f'depthwise_conv2d_nhwc runs on CUDA tensors (or, slowly, anywhere under Triton\'s '
                         f'interpreter, TRITON_INTERPRET=1); got a tensor on {x.device}')
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    with torch.autocast(x.device.type, enabled=False):
        y = _depthwise_op(x.to(dtype), weight.to(dtype))
        if bias is not None:
            y = y + bias.to(dtype).view(1, c, 1, 1)
    return y


class TritonDepthwiseConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (odd k <= 7, stride 1, same zero padding) that runs ``depthwise_conv2d_nhwc``
    on CUDA inputs and ``F.conv2d`` elsewhere; same parameters and state_dict keys as the ``nn.Conv2d``."""

    def _conv_forward(self, input, weight, bias):
        if input.is_cuda:
            return depthwise_conv2d_nhwc(input, weight, bias)
        return super()._conv_forward(input, weight, bias)


def _routable(module: nn.Module, kernel_sizes) -> bool:
    if type(module) is not nn.Conv2d:
        return False
    k = module.kernel_size[0]
    return (k in kernel_sizes and k % 2 == 1 and k <= MAX_KERNEL and module.kernel_size == (k, k)
            and module.groups == module.in_channels == module.out_channels and module.stride == (1, 1)
            and module.padding == (k // 2, k // 2) and module.dilation == (1, 1) and module.padding_mode == 'zeros')


def route_depthwise_to_triton(model: nn.Module, kernel_sizes=(7,)) -> int:
    """Make ``model``'s depthwise convs of the given kernel sizes ``TritonDepthwiseConv2d`` in place (before
    it is compiled); returns how many. An experiment route (``benchmark_backbone.py``'s ``+triton7``): the
    models ship with cuDNN until the route has run with the detection configs' changing input sizes
    (docs/benchmarks.md, "A triton route")."""
    bad = [k for k in kernel_sizes if k % 2 == 0 or not 1 <= k <= MAX_KERNEL]
    if bad:
        raise ValueError(f'route_depthwise_to_triton: kernel sizes must be odd and <= {MAX_KERNEL}, got {bad}')
    routed = 0
    for module in model.modules():
        if _routable(module, set(kernel_sizes)):
            module.__class__ = TritonDepthwiseConv2d
            routed += 1
    return routed
