"""What ``torch.compile`` did during part of a run: graphs compiled, seconds spent, cache hits.

Warm-up is the cost of the compiled default path, and where it goes decides what can shrink it: dynamo's
tracing runs in every process, inductor's code generation only when its on-disk caches miss. The benchmarks
record it per row; the backbones log it with their first compiled forward. Read from
dynamo's own accounting (``torch._dynamo.utils.compilation_time_metrics``, a list of timings per timer, and
``counters``), which are process-wide running records; ``CompileStats`` takes what was added over a ``with``
block. ``torch._dynamo.reset()`` empties the timers (not the counters): across a reset inside a block, the
seconds count from the reset on.
"""
from typing import Any, Dict, Tuple

# seconds: dynamo's timer names (torch 2.11 - 2.15) -> field names
TIMES = {'frames_s': '_compile.compile_inner',           # a compiled frame: the next three and more
         'trace_s': 'bytecode_tracing',                  # dynamo tracing the Python code (every process)
         'backend_s': 'OutputGraph.call_user_compiler',  # AOTAutograd + inductor of the forward graphs
         'guards_s': 'build_guards',
         # AOTAutograd compiles a graph's backward only when the first backward reaches it, outside the
         # frame's compile: with an empty cache about as long as the forward's. Where the backward keeps
         # symbolic sizes (dynamic=True, the detection configs) it compiles it inside the frame instead
         # (in backend_s), and this stays 0
         'backward_s': 'backward._backward_impl'}
# counts: (counter group, key) -> field names
COUNTS = {'graphs': ('stats', 'unique_graphs'),
          'aot_cache_hits': ('aot_autograd', 'autograd_cache_hit'),
          'aot_cache_misses': ('aot_autograd', 'autograd_cache_miss'),
          'aot_cache_bypasses': ('aot_autograd', 'autograd_cache_bypass'),
          'inductor_cache_hits': ('inductor', 'fxgraph_cache_hit'),
          'inductor_cache_misses': ('inductor', 'fxgraph_cache_miss'),
          # graphs compiled for CUDA graphs that inductor runs without them (a CPU op, a mutated input, a
          # custom op it cannot record...): silently slower, every call then launches its kernels from the
          # host. torch logs the reason as a warning of its ``cudagraphs`` logger
          'cudagraph_skips': ('inductor', 'cudagraph_skips')}


def _timers() -> Dict[str, Tuple[Any, int]]:
    """Where each timer's record stands: (its list, its length). A reset replaces the lists."""
    from torch._dynamo.utils import compilation_time_metrics
    return {key: (compilation_time_metrics.get(key), len(compilation_time_metrics.get(key) or ()))
            for key in TIMES.values()}


def _seconds_since(mark: Dict[str, Tuple[Any, int]]) -> Dict[str, float]:
    from torch._dynamo.utils import compilation_time_metrics
    out = {}
    for name, key in TIMES.items():
        timings = compilation_time_metrics.get(key) or []
        listed, length = mark[key]
        # the same list: what was appended since; another (dynamo was reset meanwhile): all of it
        out[name] = round(sum(timings[length:] if timings is listed else timings), 3)
    out['compile_s'] = round(out['frames_s'] + out['backward_s'], 3)  # everything compiling took
    return out


def _counts() -> Dict[str, int]:
    from torch._dynamo.utils import counters
    return {name: counters[group].get(key, 0) for name, (group, key) in COUNTS.items()}


class CompileStats:
    """``with CompileStats() as stats: ...``; then ``stats.result`` holds what was compiled inside the block
    (``graphs``, the ``*_s`` seconds of ``TIMES`` and ``compile_s``, the cache counts of ``COUNTS``). Or
    ``start()`` and, later, ``stop()``, which returns that result."""

    def start(self) -> 'CompileStats':
        self._timers, self._counts = _timers(), _counts()
        self.result: Dict[str, float] = {}
        return self

    def stop(self) -> Dict[str, float]:
        self.result = _seconds_since(self._timers)
        self.result.update({k: v - self._counts[k] for k, v in _counts().items()})
        return self.result

    def __enter__(self) -> 'CompileStats':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def describe(stats: Dict[str, float]) -> str:
    """One line, e.g. '6 graphs compiled in 9.5 s (dynamo tracing 5.5 s, guards 1.0 s, AOTAutograd + inductor
    2.8 s, inductor backward 0.2 s; AOTAutograd cache 6 hits / 0 misses, inductor cache 12 / 0)'; the backward
    part only where a backward ran, the CUDA graphs inductor skipped only where it skipped any; 'nothing
    compiled' when no graph was."""
    if not stats or not stats.get('graphs'):
        return 'nothing compiled'
    plural = 's' if stats['graphs'] != 1 else ''
    text = (f"{stats['graphs']} graph{plural} compiled in {stats['compile_s']:.1f} s (dynamo tracing "
            f"{stats['trace_s']:.1f} s, guards {stats['guards_s']:.1f} s, AOTAutograd + inductor "
            f"{stats['backend_s']:.1f} s")
    if stats.get('backward_s'):
        text += f", inductor backward {stats['backward_s']:.1f} s"
    caches = [k for k in COUNTS if k.endswith(('_hits', '_misses', '_bypasses'))]
    if any(stats.get(k) for k in caches):  # none with a backend other than inductor
        bypass = f" / {stats['aot_cache_bypasses']} bypassed" if stats.get('aot_cache_bypasses') else ''
        text += (f"; AOTAutograd cache {stats['aot_cache_hits']} hits / {stats['aot_cache_misses']} "
                 f"misses{bypass}, inductor cache {stats['inductor_cache_hits']} / {stats['inductor_cache_misses']}")
    text += ')'
    if stats.get('cudagraph_skips'):
        n = stats['cudagraph_skips']
        text += (f"; CUDA graphs skipped for {n} graph{'s' if n != 1 else ''}, which launch their kernels "
                 f"from the host (torch logged why in a warning)")
    return text

