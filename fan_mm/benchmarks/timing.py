"""The one timing helper of the benchmarks: warm-up, repeats, median.

A function is called ``warmup`` times untimed (numba / torch.compile compilation, CUDA-graph capture,
cuDNN autotuning, lazy initialisation), then ``repeats`` times, each call timed alone; the median is the
figure reported, the minimum and maximum show the spread. On a CUDA device each call is timed with CUDA
events and pending GPU work is waited for, so that the time is the GPU's and not that of the launches;
there the peak memory over the timed calls is recorded too. ``clock='cpu'`` times the CPU time of this
process (``time.process_time``), which holds on a machine loaded by other jobs, where wall-clock time does
not. Importing this module does not import torch; it is imported only for a CUDA device.
"""
import statistics
import time
from typing import Callable, Dict, Tuple

CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}


def is_cuda(device) -> bool:
    """Whether ``device`` (None, a string or a torch.device) is a CUDA device."""
    return device is not None and str(getattr(device, 'type', device)).split(':')[0] == 'cuda'


def synchronize(device) -> None:
    """Wait for the pending work of a CUDA ``device``; nothing for any other device."""
    if is_cuda(device):
        import torch
        torch.cuda.synchronize(device)


def _clock(clock: str) -> Callable[[], float]:
    if clock not in CLOCKS:
        raise ValueError(f'clock={clock!r}: use one of {list(CLOCKS)}')
    return CLOCKS[clock]


def timed_call(fn: Callable[[], object], device=None, clock: str = 'wall') -> Tuple[float, object]:
    """``(seconds, output)`` of one call of ``fn``; on a CUDA ``device``, GPU work pending before the call is
    finished first and the call's own GPU work is included."""
    now = _clock(clock)
    synchronize(device)
    t0 = now()
    out = fn()
    synchronize(device)
    return now() - t0, out


def time_fn(fn: Callable[[], object], device=None, warmup: int = 0, repeats: int = 1,
            clock: str = 'wall') -> Dict[str, object]:
    """Median / min / max milliseconds of ``repeats`` timed calls of ``fn`` after ``warmup`` untimed ones.

    Returns ``ms``, ``ms_min``, ``ms_max``, ``runs_ms`` (every timed call), ``warmup_s`` (seconds the
    warm-up took: where compilation and graph capture happen), and ``peak_gib`` / ``reserved_gib``:
    ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the timed calls on a CUDA device,
    0 elsewhere."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f'need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}')
    now = _clock(clock)
    cuda = is_cuda(device)
    t0 = now()
    for _ in range(warmup):
        fn()
    synchronize(device)
    warmup_s = now() - t0
    if cuda:
        import torch
        torch.cuda.reset_peak_memory_stats(device)
    runs = []
    for _ in range(repeats):
        if cuda and clock == 'wall':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            runs.append(start.elapsed_time(end))
        else:
            runs.append(timed_call(fn, device, clock)[0] * 1e3)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if cuda else 0.
    reserved = torch.cuda.max_memory_reserved(device) / 2 ** 30 if cuda else 0.
    return dict(ms=statistics.median(runs), ms_min=min(runs), ms_max=max(runs), runs_ms=runs,
                warmup_s=warmup_s, peak_gib=peak, reserved_gib=reserved)
