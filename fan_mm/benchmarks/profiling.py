"""Where the time of a step goes: operators, GPU kernels by kind, and how long the GPU waits for the CPU.

:func:`profile_steps` runs a step function under ``torch.profiler`` and returns the ``top`` operators by
self device time and, on a CUDA device, every GPU kernel sorted by kind (:func:`kernel_class`), the kernels
launched per step and the GPU's busy time against the step's span (:func:`busy_and_span`). The backbone and
whole-model benchmarks (``--profile``) both use it, so that their tables read the same.
"""
from typing import Callable, Dict, List, Sequence, Tuple

import torch

from .timing import synchronize

# GPU kernel names -> what they compute. Inductor's kernels come first: their names list the aten ops fused
# in them ("convert_element_type" is no convolution); its templates ("triton_tem_") are matrix products or
# convolutions. Then, in this order (cuDNN's attention kernels say "fprop" and its implicit-GEMM convolutions
# "gemm" too), the names cuDNN, cuBLAS(Lt) and aten give their kernels on Hopper.
KERNEL_CLASSES = (
    ('attention', ('sdpa', 'flash', 'fmha', 'attention')),  # cuDNN's are "..._sdpa_..._flash_fprop_..."
    ('convolution', ('conv2d', 'convolution', 'conv_', 'fprop', 'dgrad', 'wgrad', 'depthwise', 'nchwtonhwc',
                     'nhwctonchw', '_dw_forward_', '_dw_weight_grad_')),  # the last two: fan_mm's Triton kernels
    ('matrix product', ('gemm', 'gemv', 'nvjet', 'cutlass', 'splitkreduce', 'cublas')),
    ('copy / fill', ('memcpy', 'memset', 'copy', 'fill')),
)
INDUCTOR_FUSED = 'inductor fused (elementwise, reductions)'


def kernel_class(name: str) -> str:
    """The kind of work a GPU kernel of this name does (``KERNEL_CLASSES``; 'other' for the rest, mostly aten's
    elementwise and reduction kernels)."""
    low = name.lower()
    if low.startswith('triton_tem_'):
        return 'convolution' if 'convolution' in low else 'matrix product'
    if low.startswith('triton_'):
        return INDUCTOR_FUSED
    for cls, keys in KERNEL_CLASSES:
        if any(k in low for k in keys):
            return cls
    return 'other'


def busy_and_span(intervals: Sequence[Tuple[float, float]]) -> Tuple[float, float]:
    """(time covered by at least one of the ``(start, end)`` intervals, first start to last end): the GPU's
    busy time and the wall time of a profile; kernels of several streams may overlap, so busy is not their sum."""
    busy, span, current = 0., 0., None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                busy += current[1] - current[0]
            current = [start, end]
        else:
            current[1] = max(current[1], end)
    if current is not None:
        busy += current[1] - current[0]
        span = max(end for _, end in intervals) - min(start for start, _ in intervals)
    return busy, span


def is_gpu_kernel(event) -> bool:
    """Whether a profiler event is a kernel (or a copy) on the GPU, not a range drawn on the GPU's timeline:
    inductor's "## Call CompiledFxGraph ..." and the ranges of ``record_function`` (an optimizer's
    "Optimizer.step#AdamW.step") span the kernels they launch, and counting them would count those twice."""
    return (event.device_type == torch.autograd.DeviceType.CUDA and not event.name.startswith('## ')
            and not getattr(event, 'is_user_annotation', False))


def profile_steps(step: Callable[[], object], device: torch.device, spec: str, warmup: int = 3, steps: int = 3,
                  top: int = 25) -> Dict:
    """``torch.profiler`` over ``steps`` calls of ``step`` (after ``warmup`` untimed ones; compilation and
    CUDA-graph capture belong there): the ``top`` operators by self device time (self CPU time on a CPU),
    and on a CUDA device the GPU kernels: per step their number, their summed time, the GPU's busy time
    against the span of the step, the time by kind of kernel and the ``top`` kernels. ``spec`` names the
    profiled thing in the result."""
    from torch.profiler import ProfilerActivity, profile
    for _ in range(warmup):
        step()
    synchronize(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    key = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    # operators only: their self device time is that of the kernels they launch (kernels are listed too)
    events = [e for e in prof.key_averages() if str(getattr(e, 'device_type', '')).endswith('CPU')]
    total = sum(getattr(e, key) for e in events) or 1.
    rows = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
    ops = [dict(op=e.key, ms_per_step=getattr(e, key) / 1e3 / steps, share=getattr(e, key) / total,
                calls_per_step=e.count / steps) for e in rows]
    out = dict(spec=spec, steps=steps, ms_per_step_total=total / 1e3 / steps, ops=ops)
    if device.type == 'cuda':
        # Every GPU kernel: how many a step launches is what bounds a step on the CPU side, their sum is the
        # GPU's busy time.
        kernels = [e for e in prof.events() if is_gpu_kernel(e)]
        busy_us, span_us = busy_and_span([(e.time_range.start, e.time_range.end) for e in kernels])
        # busy < span: the GPU waits for the CPU (launches, Python, autograd, synchronisations) between kernels
        by_name: Dict[str, List[float]] = {}
        for e in kernels:
            by_name.setdefault(e.name, []).append(e.time_range.elapsed_us())
        by_class: Dict[str, float] = {}
        for name, times in by_name.items():
            cls = kernel_class(name)
            by_class[cls] = by_class.get(cls, 0.) + sum(times) / 1e3 / steps
        top_kernels = sorted(by_name.items(), key=lambda kv: -sum(kv[1]))[:top]
        out.update(kernels_per_step=len(kernels) / steps,
                   kernel_ms_per_step=sum(e.time_range.elapsed_us() for e in kernels) / 1e3 / steps,
                   busy_ms_per_step=busy_us / 1e3 / steps, span_ms_per_step=span_us / 1e3 / steps,
                   kernel_ms_by_class=dict(sorted(by_class.items(), key=lambda kv: -kv[1])),
                   kernels=[dict(kernel=n, kind=kernel_class(n), ms_per_step=sum(t) / 1e3 / steps,
                                 calls_per_step=len(t) / steps) for n, t in top_kernels])
    return out
