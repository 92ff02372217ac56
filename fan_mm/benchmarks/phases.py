"""Where a training iteration's wall time goes on the host, part of the model by part, and where it waits.

A detector's iteration at batch 2 is bound by the host: the GPU profile (:mod:`.profiling`) shows the GPU
idle for more than half of it, but not which code keeps the host busy. :func:`measure_phases` answers that.
It times named phases of a step on the host's clock: the step's own parts (forward, backward, optimizer)
and the model's parts, whose methods it wraps for the time of the measurement (:data:`PHASE_METHODS`:
backbone, neck, RPN, RoI and decode heads). A phase's time is its own, the phases nested in it subtracted,
so the phases add up to the step.

A phase that synchronises with the GPU (a copy to the host, ``.item()``, a copy from pageable host memory,
mmcv's NMS) waits there for all the work queued before it, its own and that of earlier phases: a head's
phase can hold the tail of the backbone's GPU time. So each phase also gets the number of synchronisations
it made, counted with torch's CUDA sync debug mode (``torch.cuda.set_sync_debug_mode('warn')``) in passes
of their own, so that counting does not slow the timed passes. The step ends with a wait for the GPU (its
own phase), so that no GPU work spills into the next step's phases.
"""
import time
import warnings
from contextlib import contextmanager, nullcontext
from typing import Callable, Dict, List, Optional

import torch

from .timing import synchronize

# (phase name, attribute path from the model ('' for the model itself), method): the parts of mmdet / mmseg
# models that get a phase of their own where the model has them
PHASE_METHODS = (
    ('backbone', 'backbone', 'forward'),
    ('neck', 'neck', 'forward'),
    ('rpn_head.loss_and_predict', 'rpn_head', 'loss_and_predict'),
    ('roi_head.loss', 'roi_head', 'loss'),
    ('bbox_head.loss', 'bbox_head', 'loss'),
    ('decode_head (train)', '', '_decode_head_forward_train'),
    ('auxiliary_head (train)', '', '_auxiliary_head_forward_train'),
)
END_WAIT = 'wait for the GPU at the end'
OUTSIDE = 'outside the phases'
# what torch's sync debug mode warns with (c10::cuda::warn_or_error_on_sync)
SYNC_WARNING = 'called a synchronizing CUDA operation'


class PhaseClock:
    """Wall time of named phases, each phase's own (the phases nested in it subtracted), and the
    synchronisations each phase made (:meth:`count_sync`, called by :func:`count_syncs`)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.own_s: Dict[str, float] = {}  # in the order the phases were first entered
        self.calls: Dict[str, int] = {}
        self.syncs: Dict[str, int] = {}
        self._stack: List[list] = []  # [name, start, seconds of the phases nested in it]

    @contextmanager
    def phase(self, name: str):
        self.own_s.setdefault(name, 0.)
        frame = [name, self.clock(), 0.]
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            total = self.clock() - frame[1]
            self.own_s[name] += total - frame[2]
            self.calls[name] = self.calls.get(name, 0) + 1
            if self._stack:
                self._stack[-1][2] += total

    def count_sync(self) -> None:
        """One synchronisation, in the innermost phase open now."""
        name = self._stack[-1][0] if self._stack else OUTSIDE
        self.syncs[name] = self.syncs.get(name, 0) + 1


class _NoClock:
    """Stands in for a :class:`PhaseClock` where a step runs untimed: its phases cost a ``nullcontext``."""

    @staticmethod
    def phase(name: str):
        return nullcontext()


NO_CLOCK = _NoClock()


@contextmanager
def count_syncs(clock: PhaseClock):
    """Count the CUDA synchronisations made inside the block into ``clock``'s open phase (torch's sync debug
    mode warns at each; the warnings are counted, not shown). Other warnings pass through as usual."""
    previous_mode = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings():
        warnings.filterwarnings('always', message='.*' + SYNC_WARNING)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if SYNC_WARNING in str(message):
                clock.count_sync()
            else:
                shown(message, category, filename, lineno, file, line)
        warnings.showwarning = show
        torch.cuda.set_sync_debug_mode('warn')
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(previous_mode)


@contextmanager
def phases_of(model: torch.nn.Module, clock: PhaseClock):
    """Wrap the methods of :data:`PHASE_METHODS` that ``model`` has, so that each call is a phase of
    ``clock``; the model is as it was afterwards (an instance attribute that was there, such as a compiled
    backbone's ``forward``, is put back, one that was not is removed)."""
    missing = object()
    wrapped = []
    for name, path, method in PHASE_METHODS:
        owner = model
        for part in filter(None, path.split('.')):
            owner = getattr(owner, part, None)
        fn = getattr(owner, method, None) if owner is not None else None
        if fn is None:
            continue

        def timed(*args, _fn=fn, _name=name, **kwargs):
            with clock.phase(_name):
                return _fn(*args, **kwargs)
        wrapped.append((owner, method, owner.__dict__.get(method, missing)))
        setattr(owner, method, timed)
    try:
        yield [w[1] for w in wrapped]
    finally:
        for owner, method, before in reversed(wrapped):
            if before is missing:
                delattr(owner, method)
            else:
                setattr(owner, method, before)


def measure_phases(step: Callable[[PhaseClock], object], model: torch.nn.Module, device: torch.device,
                   spec: str, steps: int = 5) -> Dict:
    """Host wall time per phase of ``steps`` calls of ``step(clock)`` (which opens the phases of its own
    parts with ``clock.phase``), with ``model``'s parts as phases too (:func:`phases_of`); on a CUDA device
    also the synchronisations per phase, from ``steps`` more calls. Run it after the step's warm-up: a
    compiling call would be timed. ``spec`` names the measured thing in the result."""
    clock = PhaseClock()
    with phases_of(model, clock):
        synchronize(device)
        for _ in range(steps):
            step(clock)
            with clock.phase(END_WAIT):
                synchronize(device)
    counted: Optional[PhaseClock] = None
    if device.type == 'cuda':
        counted = PhaseClock()
        with phases_of(model, counted):
            for _ in range(steps):
                with count_syncs(counted):
                    step(counted)
                synchronize(device)
    step_s = sum(clock.own_s.values()) / steps
    rows = [dict(phase=name, ms_per_step=s / steps * 1e3, share=s / steps / step_s if step_s else 0.,
                 calls_per_step=clock.calls.get(name, 0) / steps,
                 syncs_per_step=None if counted is None else counted.syncs.get(name, 0) / steps)
            for name, s in clock.own_s.items()]
    if counted is not None and counted.syncs.get(OUTSIDE):
        rows.append(dict(phase=OUTSIDE, ms_per_step=0., share=0., calls_per_step=0.,
                         syncs_per_step=counted.syncs[OUTSIDE] / steps))
    return dict(spec=spec, steps=steps, step_ms=step_s * 1e3, phases=rows)
