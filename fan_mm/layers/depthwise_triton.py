"""Depthwise convolution (odd k x k, stride 1, same padding) on channels_last maps, as Triton kernels.

cuDNN's NHWC depthwise kernels run FAN-Hybrid's depthwise convolutions at a fifth of the memory bandwidth
(``docs/benchmarks.md``, "By kind of kernel"): a 1536 x 56 x 56 bf16 map takes 59 us where one pass over it
takes about 12 us. These kernels are laid out for that bound (channels are the contiguous axis, so every
load is coalesced; float32 accumulation; the bias is added before the one rounding of the output):

- forward: the streaming kernel. A program takes a band of output rows and a block of columns x channels and
  reads the band's input rows (plus the halo) once each, one load per column tap; each row is added into
  the k output rows that read it, held as k accumulator tiles; the oldest is complete after each row and
  stored. Each iteration loads the next row before it computes (the loads of a row are in flight while
  the previous row is summed), and for k <= 3 the weights are loaded once, before the row loop. Launch
  settings per kernel size (FAN's 3x3 channel MLPs, the ConvNeXt stem's 7x7) from
  ``benchmark_depthwise.py --sweep-triton``; ``tools/analysis/triton_machine_code.py`` reads what they
  compile to (registers, spills, what a row iteration loads) on any machine.
- input gradient: the same kernel on the output gradient with the kernel rotated by 180 degrees; for k <= 3
  it also sums the output gradient's rows it loads, per channel: the bias gradient.
- weight gradient, k <= 3: cuDNN's, faster there than the kernel below.
- weight gradient, larger k: one program per chunk of rows, kernel row and block of channels; each gradient
  tile is loaded once per kernel row and multiplied with the k input tiles of that row's column taps into k
  accumulator tiles, summed over their columns once at the end. The middle kernel row's programs also sum
  the bias gradient.
- every weight and bias gradient: float32 partial sums per program, added up in a fixed order afterwards
  (deterministic).

The weights are passed tap-major, (k * k, C), so that a program loads one tap's channels contiguously.

``depthwise_conv2d_nhwc`` is a ``torch.library`` operator with its autograd formula, so that it stays inside
compiled graphs and CUDA graphs as one opaque call, as cuDNN's convolution does. The kernels are not
specialised on the map's size (``do_not_specialize``), so that an input size met for the first time, as
in multi-scale detection, needs no new kernel variant (the strides stay divisible by 16 wherever C is).

Status (December 2026): a route of ``tools/analysis/benchmark_depthwise.py`` (``--routes channels_last
triton``; ``--sweep-triton`` for the launch settings), ``benchmark_backbone.py`` (``+triton7``, ``+triton``)
and ``benchmark_model.py`` (``+triton``),
exact to float32 rounding (``tests/models/test_depthwise_triton.py``: against float64 on a GPU, and in
Triton's interpreter on a CPU). Kernel by kernel it beats cuDNN on FAN-Hybrid's shapes, the bias included
(``docs/benchmarks.md``, "A triton route"): a train step's depthwise convs in 0.64x cuDNN's time, and
7% less GPU time for FAN-S-Hybrid's whole train step, on an H100. Through the config switch below it made
Mask R-CNN's inference faster on an H100 (SegFormer's level). The models run cuDNN by default until the
route has been timed on an H200; ``compile_blocks=dict(..., depthwise='triton')`` switches a fan_mm
backbone to it.
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
    def _pick(j: tl.constexpr, v0, v1, v2, v3, v4, v5, v6):
        # v_j for a compile-time j (Triton has no lists of tensors)
        v = v0
        if j == 1:
            v = v1
        if j == 2:
            v = v2
        if j == 3:
            v = v3
        if j == 4:
            v = v4
        if j == 5:
            v = v5
        if j == 6:
            v = v6
        return v

    @triton.jit
    def _row3(acc, v0, v1, v2, wa, wb, wc):
        # acc + sum_j v_j * w_j for three column taps whose weights (BLOCK_C,) were loaded before the row loop
        return acc + v0 * wa[None, :] + v1 * wb[None, :] + v2 * wc[None, :]

    @triton.jit
    def _tap(w_ptr, chans, chan_ok, swc, swi, swj, i: tl.constexpr, j: tl.constexpr, K: tl.constexpr,
             FLIP: tl.constexpr):
        # weight[c, i, j] of the block's channels, float32; FLIP: weight[c, K-1-i, K-1-j]
        if FLIP:
            tap = (K - 1 - i) * swi + (K - 1 - j) * swj
        else:
            tap = i * swi + j * swj
        return tl.load(w_ptr + chans * swc + tap, mask=chan_ok, other=0.).to(tl.float32)

    @triton.jit
    def _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj,
                    i: tl.constexpr, K: tl.constexpr, FLIP: tl.constexpr):
        # sum_j v_j * w[c, i, j]: one input row's contribution to the output row that kernel row i reads it
        # with (v_j: the row shifted by column tap j); FLIP reads w[c, K-1-i, K-1-j] (the input gradient)
        acc = tl.zeros_like(v0)
        for j in tl.static_range(K):
            wv = _tap(w_ptr, chans, chan_ok, swc, swi, swj, i, j, K, FLIP)
            acc += _pick(j, v0, v1, v2, v3, v4, v5, v6) * wv[None, :]
        return acc

    @triton.jit
    def _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, shift: tl.constexpr):
        wi = cols + shift
        mask = ((wi >= 0) & (wi < W) & row_ok)[:, None] & chan_ok[None, :]
        return tl.load(x_row + wi[:, None] * sxw + chans[None, :], mask=mask, other=0.).to(tl.float32)

    @triton.jit
    def _row_taps(x_base, t, end, cols, chans, chan_ok, H, W, sxh, sxw, K: tl.constexpr):
        # input row t at each column tap (up to 7; the unused ones repeat the first), float32; zero where the
        # row is outside the map or at or past row `end`
        pad: tl.constexpr = K // 2
        ts = cols * 0 + t  # the row as a vector: the interpreter cannot mix a scalar bool into a mask
        row_ok = (ts >= 0) & (ts < H) & (ts < end)
        x_row = x_base + t * sxh
        v0 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 0 - pad)
        v1 = v0
        v2 = v0
        v3 = v0
        v4 = v0
        v5 = v0
        v6 = v0
        if K > 1:
            v1 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 1 - pad)
            v2 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 2 - pad)
        if K > 3:
            v3 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 3 - pad)
            v4 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 4 - pad)
        if K > 5:
            v5 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 5 - pad)
            v6 = _shifted(x_row, cols, chans, chan_ok, row_ok, W, sxw, 6 - pad)
        return v0, v1, v2, v3, v4, v5, v6

    # Not specialised on the map's size (Triton would compile a variant per size class, divisible by 16 or
    # not, for inputs whose size changes from batch to batch, as in detection); the strides are, for
    # vectorised loads.
    @triton.jit(do_not_specialize=['H', 'W', 'ROWS'])
    def _dw_forward_stream_kernel(x_ptr, w_ptr, b_ptr, y_ptr, sum_ptr, H, W, C, ROWS, sxn, sxh, sxw, syn, syh,
                                  syw, swc, swi, swj, K: tl.constexpr, FLIP: tl.constexpr,
                                  HAS_BIAS: tl.constexpr, SUM_INPUT: tl.constexpr,
                                  BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
        # x, y: (N, H, W, C) with unit channel stride; weight[c, i, j] at w_ptr + c*swc + i*swi + j*swj. One
        # program per band of ROWS output rows, block of columns and block of channels. It streams the input
        # rows of the band (plus the K - 1 rows of halo) once: each row is loaded once per column tap and
        # added into the K output rows that read it, held as K float32 accumulator tiles (named acc0..acc6:
        # no lists in Triton); the oldest is complete after each row, stored (with the bias), and the tiles
        # shift. A row's column taps are loaded one iteration ahead (n0..n6, carried into the next
        # iteration), so that its loads are in flight while the previous row is summed and stored instead of
        # waiting for them. With that and the 3x3 weights loaded once, the forward's time over FAN-S-Hybrid's
        # shapes fell by 18% (3x3) and 16% (7x7) on an H100, each at its best launch setting.
        # SUM_INPUT: also sum the band's own input rows per channel, float32, into sum_ptr (one row of C per
        # program, programs numbered along bands x column blocks): run on the output gradient, that is the
        # bias gradient, from loads the input gradient makes anyway.
        bands = tl.cdiv(H, ROWS)
        n = tl.program_id(0) // bands
        first = (tl.program_id(0) % bands) * ROWS
        last = tl.minimum(first + ROWS, H)  # one past the band's last output row
        cols = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
        chans = tl.program_id(2) * BLOCK_C + tl.arange(0, BLOCK_C)
        chan_ok = chans < C
        pad: tl.constexpr = K // 2
        x_base = x_ptr + n.to(tl.int64) * sxn
        y_base = y_ptr + n.to(tl.int64) * syn
        out_cols = (cols < W)[:, None] & chan_ok[None, :]
        if HAS_BIAS:
            bias = tl.load(b_ptr + chans, mask=chan_ok, other=0.).to(tl.float32)
        zero = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
        zero_c = tl.zeros([BLOCK_C], dtype=tl.float32)
        acc0 = zero
        acc1 = zero
        acc2 = zero
        acc3 = zero
        acc4 = zero
        acc5 = zero
        acc6 = zero
        acc_sum = zero
        # 3x3: the nine weights of the program's channels are loaded once, before the loop (loaded in the
        # loop, they are reloaded every row: its stores keep the compiler from hoisting them). Larger kernels
        # keep loading them per row, where k * k weights held across the loop would not fit in registers.
        w00 = zero_c
        w01 = zero_c
        w02 = zero_c
        w10 = zero_c
        w11 = zero_c
        w12 = zero_c
        w20 = zero_c
        w21 = zero_c
        w22 = zero_c
        if K == 3:
            w00 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 0, 0, K, FLIP)
            w01 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 0, 1, K, FLIP)
            w02 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 0, 2, K, FLIP)
            w10 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 1, 0, K, FLIP)
            w11 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 1, 1, K, FLIP)
            w12 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 1, 2, K, FLIP)
            w20 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 2, 0, K, FLIP)
            w21 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 2, 1, K, FLIP)
            w22 = _tap(w_ptr, chans, chan_ok, swc, swi, swj, 2, 2, K, FLIP)
        # the first row's column taps; each iteration then loads the next row's before it computes, so that
        # the loads are in flight while it does (a row's loads otherwise wait for the previous row's sums)
        n0, n1, n2, n3, n4, n5, n6 = _row_taps(x_base, first - pad, last + pad, cols, chans, chan_ok, H, W, sxh,
                                               sxw, K)
        for t in range(first - pad, last + pad):  # input row t; acc_s holds output row t - pad + s
            ts = cols * 0 + t  # the row as a vector: the interpreter cannot mix a scalar bool into a mask
            v0, v1, v2, v3, v4, v5, v6 = n0, n1, n2, n3, n4, n5, n6
            n0, n1, n2, n3, n4, n5, n6 = _row_taps(x_base, t + 1, last + pad, cols, chans, chan_ok, H, W, sxh, sxw, K)
            if SUM_INPUT:  # the unshifted tile, of the band's own rows only (the halo rows are a neighbour's)
                own = (ts >= first) & (ts < last)
                acc_sum += tl.where(own[:, None], _pick(pad, v0, v1, v2, v3, v4, v5, v6), 0.)
            # output row t - pad + s reads input row t with kernel row K - 1 - s
            if K == 3:
                acc0 = _row3(acc0, v0, v1, v2, w20, w21, w22)
                acc1 = _row3(acc1, v0, v1, v2, w10, w11, w12)
                acc2 = _row3(acc2, v0, v1, v2, w00, w01, w02)
            else:
                acc0 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 1, K, FLIP)
            if K > 3:
                acc1 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 2, K, FLIP)
                acc2 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 3, K, FLIP)
                acc3 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 4, K, FLIP)
                acc4 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 5, K, FLIP)
            if K > 5:
                acc5 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 6, K, FLIP)
                acc6 += _kernel_row(v0, v1, v2, v3, v4, v5, v6, w_ptr, chans, chan_ok, swc, swi, swj, K - 7, K, FLIP)
            out = acc0
            if HAS_BIAS:
                out = out + bias[None, :]
            o = t - pad  # complete now; rows before the band are its halo
            tl.store(y_base + o * syh + cols[:, None] * syw + chans[None, :], out.to(y_ptr.dtype.element_ty),
                     mask=out_cols & (ts - pad >= first)[:, None])
            if K == 1:
                acc0 = zero
            if K == 3:
                acc0 = acc1
                acc1 = acc2
                acc2 = zero
            if K == 5:
                acc0 = acc1
                acc1 = acc2
                acc2 = acc3
                acc3 = acc4
                acc4 = zero
            if K == 7:
                acc0 = acc1
                acc1 = acc2
                acc2 = acc3
                acc3 = acc4
                acc4 = acc5
                acc5 = acc6
                acc6 = zero
        if SUM_INPUT:
            program = tl.program_id(0).to(tl.int64) * tl.num_programs(1) + tl.program_id(1)
            tl.store(sum_ptr + program * C + chans, tl.sum(acc_sum, axis=0), mask=chan_ok)

    @triton.jit
    def _tap_product(x_base, gv, cols, chans, g_mask, W, sxw, shift):
        wi = cols + shift
        mask = ((wi >= 0) & (wi < W))[:, None] & g_mask
        xv = tl.load(x_base + wi[:, None] * sxw + chans[None, :], mask=mask, other=0.)
        return gv * xv.to(tl.float32)

    @triton.jit(do_not_specialize=['H', 'W', 'ROWS', 'ROWS_PER_PROGRAM'])
    def _dw_weight_grad_kernel(x_ptr, g_ptr, part_ptr, bias_part_ptr, H, W, C, ROWS, ROWS_PER_PROGRAM,
                               sxn, sxh, sxw, sgn, sgh, sgw,
                               K: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr):
        # part: (programs along rows, K, K, C) float32, bias_part: (programs along rows, C) float32; row
        # r = n * H + h. One accumulator tile per column tap (up to 7, named: Triton has no lists of tensors),
        # summed over the tile's columns once at the end, so that the loop does only loads and multiply-adds.
        # The programs of the middle kernel row, which read every gradient row, also sum the bias gradient.
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
        acc_bias = tl.zeros([BLOCK_W, BLOCK_C], dtype=tl.float32)
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
                acc_bias += gv  # stored by the middle kernel row only, whose rows are all in the map
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
        tl.store(bias_part_ptr + chunk.to(tl.int64) * C + chans, tl.sum(acc_bias, axis=0),
                 mask=chan_ok & (chans * 0 + i == pad))


MAX_KERNEL = 7  # the kernels' accumulator tiles

# Which kernels run a k x k convolution (bf16 on an H100 and an H200, FAN-Hybrid's shapes at 896x896 and at
# Mask R-CNN's 800x1344; docs/benchmarks.md, "A triton route"):
# - forward and input gradient: the streaming kernel, launched with (output rows per program, columns,
#   channels, warps) = STREAM_LAUNCH[3] for k <= 3 and STREAM_LAUNCH[7] above: the settings that
#   `benchmark_depthwise.py --sweep-triton 896x896 800x1344` chose on an H100 (least calls-weighted time
#   over FAN-S-Hybrid's shapes of that kernel size at both input sizes);
# - weight gradient: k <= 3 cuDNN's (faster there than the Triton kernel); larger k the Triton kernel;
# - bias gradient: k <= 3 summed by the input gradient's streaming kernel (which loads every row of the
#   output gradient anyway); larger k by the Triton weight-gradient kernel.
STREAM_LAUNCH = {3: (8, 8, 64, 4), 7: (32, 8, 64, 4)}


def _blocks(channels: int, width: int, k: int = 3):
    # the weight-gradient kernel; 7 accumulator tiles of 16 x 64 float32 are 56 registers a thread
    # at 4 warps
    block_c = min(128 if k <= 3 else 64, triton.next_power_of_2(channels))
    block_w = min(16, triton.next_power_of_2(width))
    return block_w, block_c


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last)


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], flip: bool = False,
             launch: Optional[tuple] = None, sum_input: bool = False):
    """The depthwise conv of ``x`` by ``weight`` (C, 1, k, k) plus ``bias``; ``flip``: by the kernel rotated
    by 180 degrees (the input gradient). ``launch``: the streaming kernel with these settings instead of
    ``STREAM_LAUNCH``'s. ``sum_input``: return ``(y, x summed over N, H and W in float32)``, the bias
    gradient where ``x`` is the output gradient."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    x = _nhwc(x)
    y = torch.empty_like(x, memory_format=torch.channels_last)
    # The weights tap-major, (k * k, C): a program loads one tap's channels contiguously (read from the
    # (C, 1, k, k) weight, a load gathers them with a stride of k * k, which doubled the 7x7 forward's time).
    taps = weight.reshape(c, k * k).t().contiguous()
    # channels_last strides of an NCHW tensor: (H*W*C, 1, W*C, C); the kernel reads weight[c, i, j] at
    # c * swc + i * swi + j * swj
    b = bias if bias is not None else taps  # not read without HAS_BIAS
    rows, block_w, block_c, num_warps = launch or STREAM_LAUNCH[3 if k <= 3 else 7]
    block_w, block_c = min(block_w, triton.next_power_of_2(w)), min(block_c, triton.next_power_of_2(c))
    grid = (n * triton.cdiv(h, rows), triton.cdiv(w, block_w), triton.cdiv(c, block_c))
    sums = torch.empty(grid[0] * grid[1] if sum_input else 1, c, device=x.device, dtype=torch.float32)
    _dw_forward_stream_kernel[grid](x, taps, b, y, sums, h, w, c, rows, x.stride(0), x.stride(2), x.stride(3),
                                    y.stride(0), y.stride(2), y.stride(3), 1, k * c, c, K=k, FLIP=flip,
                                    HAS_BIAS=bias is not None, SUM_INPUT=sum_input, BLOCK_W=block_w,
                                    BLOCK_C=block_c, num_warps=num_warps)
    if sum_input:
        return y, sums.sum(0)  # partial sums added in a fixed order: deterministic
    return y


def _weight_grad(x: torch.Tensor, grad: torch.Tensor, k: int):
    """(weight gradient (C, 1, k, k), bias gradient (C,)), float32."""
    n, c, h, w = x.shape
    x, grad = _nhwc(x), _nhwc(grad)
    rows = n * h
    block_w, block_c = _blocks(c, w, k)
    c_blocks = triton.cdiv(c, block_c)
    # enough programs to fill the GPU (about 1,000), each summing a few rows
    per_program = max(1, triton.cdiv(rows * k * c_blocks, 1024))
    chunks = triton.cdiv(rows, per_program)
    part = torch.empty(chunks, k, k, c, device=x.device, dtype=torch.float32)
    bias_part = torch.empty(chunks, c, device=x.device, dtype=torch.float32)
    _dw_weight_grad_kernel[(chunks, k, c_blocks)](
        x, grad, part, bias_part, h, w, c, rows, per_program, x.stride(0), x.stride(2), x.stride(3),
        grad.stride(0), grad.stride(2), grad.stride(3), K=k, BLOCK_W=block_w, BLOCK_C=block_c, num_warps=4)
    return part.sum(0).permute(2, 0, 1).unsqueeze(1), bias_part.sum(0)  # (C, 1, k, k), (C,)


@torch.library.custom_op('fan_mm::depthwise_conv2d_nhwc', mutates_args=())
def _depthwise_op(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return _forward(x, weight, bias)


@_depthwise_op.register_fake
def _(x, weight, bias):
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op('fan_mm::depthwise_conv2d_nhwc_backward', mutates_args=())
def _depthwise_backward_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> list[torch.Tensor]:
    """[input gradient, weight gradient, bias gradient (C,)]."""
    c, _, k, _ = weight.shape
    if k <= 3:
        # the bias gradient summed by the input gradient's kernel; cuDNN's weight gradient
        grad_x, grad_b = _forward(grad, weight, None, flip=True, sum_input=True)
        _, grad_w, _ = torch.ops.aten.convolution_backward(
            _nhwc(grad), _nhwc(x), weight, None, [1, 1], [k // 2, k // 2], [1, 1], False, [0, 0], c,
            [False, True, False])
    else:
        grad_x = _forward(grad, weight, None, flip=True)
        grad_w, grad_b = _weight_grad(x, grad, k)
    grad_w_strided = torch.empty_like(weight)  # the weight's strides, as the fake says
    grad_w_strided.copy_(grad_w)
    return [grad_x, grad_w_strided, grad_b.to(weight.dtype)]


@_depthwise_backward_op.register_fake
def _(grad, x, weight):
    return [torch.empty_like(x, memory_format=torch.channels_last), torch.empty_like(weight),
            weight.new_empty(weight.shape[0])]


def _setup_context(ctx, inputs, output):
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.bias_dtype = bias.dtype if bias is not None else None


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x, grad_w, grad_b = _depthwise_backward_op(grad, x, weight)
    if ctx.bias_dtype is None:
        return grad_x, grad_w, None
    return grad_x, grad_w, grad_b.to(ctx.bias_dtype)


_depthwise_op.register_autograd(_backward, setup_context=_setup_context)


def depthwise_conv2d_nhwc(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=k // 2, groups=C)`` for an odd k x k ``weight`` (C, 1, k, k) on a
    CUDA tensor, by the Triton kernels above; the result is channels_last. Under autocast the input, the
    weight and the bias are rounded to the autocast dtype first, as autocast does for ``conv2d``;
    accumulation, the bias included, is float32, rounded once to the output."""
    if triton is None:
        raise RuntimeError('depthwise_conv2d_nhwc needs Triton, which is not installed')
    c, one, kh, kw = weight.shape
    if one != 1 or x.shape[1] != c or kh != kw or kh % 2 == 0 or kh > MAX_KERNEL:
        raise ValueError(f'depthwise_conv2d_nhwc: a depthwise (C, 1, k, k) weight with odd k <= {MAX_KERNEL} and '
                         f'an input of C channels, got weight {tuple(weight.shape)} and input {tuple(x.shape)}')
    if bias is not None and tuple(bias.shape) != (c,):
        raise ValueError(f'depthwise_conv2d_nhwc: a bias of shape ({c},) for {c} channels, got {tuple(bias.shape)}')
    if not x.is_cuda and os.environ.get('TRITON_INTERPRET') != '1':
        raise ValueError(f'depthwise_conv2d_nhwc runs on CUDA tensors (or, slowly, anywhere under Triton\'s '
                         f'interpreter, TRITON_INTERPRET=1); got a tensor on {x.device}')
    dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
    with torch.autocast(x.device.type, enabled=False):
        return _depthwise_op(x.to(dtype), weight.to(dtype), bias.to(dtype) if bias is not None else None)


class TritonDepthwiseConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (odd k <= 7, stride 1, same zero padding) that runs ``depthwise_conv2d_nhwc``
    on CUDA inputs and ``F.conv2d`` elsewhere; same parameters and state_dict keys as the ``nn.Conv2d``."""

    def _conv_forward(self, input, weight, bias):
        if input.is_cuda:
            return depthwise_conv2d_nhwc(input, weight, bias)
        return super()._conv_forward(input, weight, bias)


def _routable(module: nn.Module, kernel_sizes) -> bool:
    if type(module) not in (nn.Conv2d, TritonDepthwiseConv2d):  # routed already: counted again, unchanged
        return False
    k = module.kernel_size[0]
    return (k in kernel_sizes and k % 2 == 1 and k <= MAX_KERNEL and module.kernel_size == (k, k)
            and module.groups == module.in_channels == module.out_channels and module.stride == (1, 1)
            and module.padding == (k // 2, k // 2) and module.dilation == (1, 1) and module.padding_mode == 'zeros')


def route_depthwise_to_triton(model: nn.Module, kernel_sizes=(7,)) -> int:
    """Make ``model``'s depthwise convs of the given kernel sizes ``TritonDepthwiseConv2d`` in place (before
    it is compiled); returns how many there are then (those routed before included: a copy of a routed model
    routes again to the same count). The route of the backbones' ``compile_blocks`` option
    ``depthwise='triton'`` and of ``benchmark_backbone.py``'s ``+triton7`` / ``+triton``; the models default
    to cuDNN until the route has been timed on an H200 (docs/benchmarks.md, "A triton route")."""
    bad = [k for k in kernel_sizes if k % 2 == 0 or not 1 <= k <= MAX_KERNEL]
    if bad:
        raise ValueError(f'route_depthwise_to_triton: kernel sizes must be odd and <= {MAX_KERNEL}, got {bad}')
    routed = 0
    for module in model.modules():
        if _routable(module, set(kernel_sizes)):
            module.__class__ = TritonDepthwiseConv2d
            routed += 1
    return routed
