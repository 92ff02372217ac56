"""fan_mm.benchmarks.timing (the one timing helper) and the torch-free parts of the benchmarks."""
import ast
import pathlib

import pytest

from fan_mm.benchmarks import timing

REPO = pathlib.Path(__file__).resolve().parents[1]


class FakeClock:
    """A clock that only moves when a timed function says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_fn_reports_the_median_of_the_repeats_without_the_warmup(monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(timing.CLOCKS, 'wall', clock)
    durations = iter([5.0, 7.0,             # two warm-up calls: slow (compilation), not counted
                      0.003, 0.010, 0.001])  # three timed calls: 3, 10 and 1 ms

    def fn():
        clock.now += next(durations)
    r = timing.time_fn(fn, warmup=2, repeats=3)
    assert r['ms'] == pytest.approx(3.0)
    assert (r['ms_min'], r['ms_max']) == (pytest.approx(1.0), pytest.approx(10.0))
    assert r['runs_ms'] == pytest.approx([3.0, 10.0, 1.0])
    assert r['warmup_s'] == pytest.approx(12.0)
    assert r['peak_gib'] == 0. and r['reserved_gib'] == 0.  # no CUDA device


def test_time_fn_even_number_of_repeats_and_cpu_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(timing.CLOCKS, 'cpu', clock)
    durations = iter([0.002, 0.004, 0.006, 0.100])

    def fn():
        clock.now += next(durations)
    r = timing.time_fn(fn, device='cpu', repeats=4, clock='cpu')
    assert r['ms'] == pytest.approx(5.0) and r['warmup_s'] == 0.


def test_timed_call_returns_seconds_and_output(monkeypatch):
    clock = FakeClock()
    monkeypatch.setitem(timing.CLOCKS, 'wall', clock)

    def fn():
        clock.now += 0.25
        return 'out'
    assert timing.timed_call(fn) == (pytest.approx(0.25), 'out')


def test_bad_arguments():
    with pytest.raises(ValueError, match='clock'):
        timing.time_fn(lambda: None, clock='gpu')
    with pytest.raises(ValueError, match='repeats >= 1'):
        timing.time_fn(lambda: None, repeats=0)
    assert timing.is_cuda('cuda:1') and not timing.is_cuda('cpu') and not timing.is_cuda(None)


def _imported_modules(path, module_level):
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


@pytest.mark.parametrize('files,module_level', [
    (sorted((REPO / 'fan_mm' / 'corruptions').glob('*.py')), False),
    ([REPO / 'fan_mm' / 'benchmarks' / f'{m}.py' for m in ('timing', 'corruptions', 'synthesis', 'results')], True),
    ([REPO / 'fan_mm' / 'analysis' / f'{m}.py' for m in ('corruption_grid', 'channel_order')], False),
], ids=['corruptions', 'benchmarks', 'analysis'])
def test_corruption_code_imports_no_torch_or_mm(files, module_level):
    """The corruption engine runs with numpy / scipy / OpenCV / numba only, nowhere importing torch or mm*;
    so do the corruption grid, and the torch-free benchmarks at import (timing imports torch for CUDA only)."""
    for path in files:
        heavy = [m for m in _imported_modules(path, module_level)
                 if m.split('.')[0] in ('torch', 'torchvision', 'timm', 'mmengine', 'mmcv', 'mmdet', 'mmseg')
                 or m.startswith('fan_mm.models')]
        assert not heavy, f'{path.relative_to(REPO)} imports {heavy}'
