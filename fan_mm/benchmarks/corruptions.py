"""Side-by-side timing of fan_mm's corruption engine and the patched imagecorruptions 1.1.2.

Used by ``tools/analysis/benchmark_corruptions.py``; the figures are in docs/benchmarks.md. Each
(corruption, severity) is run by fan_mm and then by 1.1.2 on the same image with the same seed,
alternating, so that load changes on a shared machine hit both sides alike; the outputs are compared
as well. fan_mm's kernels are compiled (or loaded from numba's cache) on a small image first, so
compile time is not counted. Needs no torch.
"""
import json
import os
import shlex
import sys

import numpy as np

from fan_mm.corruptions import check_image, corrupt
from fan_mm.corruptions.reference import reference_corrupt
from fan_mm.corruptions.suites import SEVERITIES, check_corruption, check_severity, get_corruption_names
from fan_mm.utils.environment import CORRUPTION_PACKAGES, collect_environment
from .results import write_json as _write_json
from .timing import timed_call

__all__ = ['parse_size', 'benchmark_image', 'run_benchmark', 'summarize', 'format_table',
           'read_rows', 'write_json', 'environment', 'corruption_list', 'benchmark_and_report']


def parse_size(text):
    """'2048x1024' -> (height 1024, width 2048); sizes are written width x height."""
    try:
        w, h = (int(v) for v in str(text).lower().split('x'))
    except ValueError:
        raise ValueError(f'size must look like WIDTHxHEIGHT (e.g. 2048x1024), got {text!r}')
    if w < 32 or h < 32:
        raise ValueError(f'size must be at least 32x32, got {text!r}')
    return h, w


def benchmark_image(image='astronaut', size=(1024, 2048)):
    """The test image: a ``skimage.data`` photo name or an image path, resized (bicubic) to
    ``size`` = (height, width); None keeps the file's own size."""
    import cv2
    from skimage import data
    if os.path.exists(str(image)) or not hasattr(data, str(image)):
        from fan_mm.utils.image_io import read_image
        img = read_image(image, 'rgb')
    else:
        img = getattr(data, image)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
    if size is not None:
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return check_image(img)


def run_benchmark(image, corruptions, severities=SEVERITIES, repeats=1, seed=0,
                  reference=True, log=None, reference_repeat_limit_s=20.0):
    """Time every (corruption, severity) on ``image`` with fan_mm and, if ``reference``,
    with 1.1.2.  Returns a list of dicts with the fastest of ``repeats`` runs per side
    (seconds), their ratio and whether the outputs are identical.

    The two sides alternate.  The reference is not repeated once one of its runs took
    longer than ``reference_repeat_limit_s`` (1.1.2's glass_blur takes minutes).
    """
    corruptions = [check_corruption(c) for c in corruptions]
    severities = [check_severity(s) for s in severities]
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    warm = image[:64, :64]
    for name in corruptions:     # compile / load the numba kernels outside the timings
        corrupt(warm, name, 1, seed=seed)
        if reference:            # and load the reference and the libraries it imports
            reference_corrupt(warm, name, 1, seed)
    rows = []
    for name in corruptions:
        for severity in severities:
            s = seed + severity
            ours, theirs, same = [], [], None
            for _ in range(repeats):
                t, out = timed_call(lambda: corrupt(image, name, severity, seed=s))
                ours.append(t)
                if reference and not (theirs and max(theirs) > reference_repeat_limit_s):
                    t, ref = timed_call(lambda: reference_corrupt(image, name, severity, s))
                    theirs.append(t)
                    same = same is not False and bool(np.array_equal(out, ref))
            row = dict(corruption=name, severity=severity, fan_mm_s=min(ours),
                       reference_s=min(theirs) if theirs else None, identical=same,
                       fan_mm_runs=ours, reference_runs=theirs)
            row['speedup'] = row['reference_s'] / row['fan_mm_s'] if theirs else None
            rows.append(row)
            if log is not None:
                log(_format_row(row))
    return rows


def summarize(rows):
    """Per-corruption and overall sums of the fastest times, with ratios of the sums."""
    out = {}
    for row in rows:
        agg = out.setdefault(row['corruption'], dict(fan_mm_s=0.0, reference_s=0.0,
                                                     identical=True))
        agg['fan_mm_s'] += row['fan_mm_s']
        agg['reference_s'] = (None if row['reference_s'] is None or agg['reference_s'] is None
                              else agg['reference_s'] + row['reference_s'])
        agg['identical'] = agg['identical'] and row['identical'] is not False
    total = dict(fan_mm_s=sum(a['fan_mm_s'] for a in out.values()),
                 reference_s=None if any(a['reference_s'] is None for a in out.values())
                 else sum(a['reference_s'] for a in out.values()),
                 identical=all(a['identical'] for a in out.values()))
    for agg in list(out.values()) + [total]:
        agg['speedup'] = (agg['reference_s'] / agg['fan_mm_s']
                          if agg['reference_s'] is not None else None)
    return out, total


def _fmt(v, spec):
    return '-' if v is None else format(v, spec)


def _format_row(row):
    same = {True: 'yes', False: 'NO', None: '-'}[row['identical']]
    return (f"{row['corruption']:<18} {row['severity']:>3} {_fmt(row['fan_mm_s'], '10.3f')} "
            f"{_fmt(row['reference_s'], '10.2f')} {_fmt(row['speedup'], '9.1f')} {same:>9}")


def format_table(rows):
    """Markdown tables: one row per corruption (severities summed), then the total."""
    per, total = summarize(rows)
    sev = sorted({r['severity'] for r in rows})
    lines = ['| corruption | fan_mm (s) | 1.1.2 (s) | speed-up | per severity: 1.1.2 / fan_mm '
             f"(s), severities {','.join(map(str, sev))} | identical |",
             '|---|---:|---:|---:|---|:---:|']
    for name, agg in per.items():
        cells = ', '.join(f"{_fmt(r['reference_s'], '.3g')}/{r['fan_mm_s']:.3f}"
                          for r in rows if r['corruption'] == name)
        lines.append(f"| {name} | {agg['fan_mm_s']:.2f} | {_fmt(agg['reference_s'], '.1f')} | "
                     f"{_fmt(agg['speedup'], '.1f')}x | {cells} | "
                     f"{'yes' if agg['identical'] else 'NO'} |")
    lines.append(f"| **total** | **{total['fan_mm_s']:.2f}** | "
                 f"**{_fmt(total['reference_s'], '.1f')}** | "
                 f"**{_fmt(total['speedup'], '.1f')}x** | | "
                 f"{'yes' if total['identical'] else 'NO'} |")
    return '\n'.join(lines)


def environment():
    """The environment record of a corruption benchmark: versions of the corruption packages and of
    imagecorruptions, thread settings, and OpenCV's thread count."""
    import cv2
    from importlib import metadata
    env = collect_environment(('fan_mm',) + CORRUPTION_PACKAGES)
    try:  # the reference: imagecorruptions has no __version__
        env['imagecorruptions'] = metadata.version('imagecorruptions')
    except metadata.PackageNotFoundError:
        pass
    env['opencv_threads'] = cv2.getNumThreads()
    return env


def read_rows(paths):
    """Rows of one or more JSON files written by :func:`write_json` (e.g. one run without
    glass_blur and one with it), in file order."""
    rows = []
    for path in paths:
        with open(path) as f:
            rows += json.load(f)['rows']
    return rows


def write_json(path, rows, meta):
    """Rows, their per-corruption and total sums and ``meta`` (command, settings, environment)."""
    per, total = summarize(rows)
    _write_json(path, dict(meta=meta, rows=rows, per_corruption=per, total=total))


HEADER = (f"{'corruption':<18} {'sev':>3} {'fan_mm s':>10} {'1.1.2 s':>10} {'speed-up':>9} "
          f"{'identical':>9}")


def corruption_list(suite, names):
    """``names`` (comma-separated) if given, else the suite's corruptions."""
    if names:
        return [check_corruption(n.strip()) for n in names.split(',') if n.strip()]
    return get_corruption_names(suite)


def benchmark_and_report(image_name, size, suite, corruptions='', severities=SEVERITIES, repeats=1, seed=0,
                         reference=True, reference_repeat_limit_s=20.0, json_path='', print_fn=print):
    """What ``tools/analysis/benchmark_corruptions.py`` does: time, print rows as they come and the
    table, and write the rows with the settings and :func:`environment` to ``json_path``."""
    names = corruption_list(suite, corruptions)
    image = benchmark_image(image_name, size)
    print_fn(f'image {image_name} {image.shape[1]}x{image.shape[0]}, {len(names)} corruptions, '
             f'severities {list(severities)}, repeats {repeats}')
    print_fn(HEADER)
    rows = run_benchmark(image, names, severities, repeats, seed, reference=reference, log=print_fn,
                         reference_repeat_limit_s=reference_repeat_limit_s)
    print_fn('')
    print_fn(format_table(rows))
    if json_path:
        meta = dict(command=' '.join(shlex.quote(a) for a in sys.argv), image=image_name,
                    height=int(image.shape[0]), width=int(image.shape[1]), suite=suite,
                    severities=list(severities), repeats=repeats, reference_repeat_limit_s=reference_repeat_limit_s,
                    seed=seed, environment=environment())
        write_json(json_path, rows, meta)
        print_fn(f'wrote {json_path}')
    return rows
