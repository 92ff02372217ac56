"""Result files of the benchmarks and their Markdown tables.

A backbone or model result (:func:`fan_mm.benchmarks.backbone.run_backbone_benchmark`,
:func:`fan_mm.benchmarks.model.run_model_benchmark`) is a dict with ``kind``, the run's settings, ``env``
(:func:`fan_mm.utils.environment.collect_environment`) and ``rows``; :func:`write_result` stores it as
JSON and returns its table, the form docs/benchmarks.md quotes.
"""
import json
import math
from typing import Dict, Optional

from fan_mm.utils.compile_stats import describe
from fan_mm.utils.files import atomic_write


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON at ``path``, written atomically (a reader never sees half a file)."""
    atomic_write(path, (json.dumps(obj, indent=1) + '\n').encode())


def _fmt(v, nd=1):
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.{nd}f}' if math.isfinite(v) else '-'
    return str(v)


def markdown_table(result: Dict) -> str:
    """The result rows as a Markdown table (with the run's settings in a line above it)."""
    e = result['env']
    head = (f"{result['kind']} benchmark on {e.get('gpu', e.get('cpu', e['device']))}, torch {e['torch']}, "
            f"{result['precision']}, batch {result['batch']}, ")
    if result['kind'] == 'backbone':
        head += f"{result['size']}x{result['size']}"
        cols = [('spec', 'spec', 0), ('params (M)', 'params_m', 1), ('train (ms)', 'train_ms', 1),
                ('train / ref', 'train_ratio', 2), ('infer (ms)', 'infer_ms', 1), ('infer / ref', 'infer_ratio', 2),
                ('train peak (GiB)', 'train_peak_gib', 2), ('mem / ref', 'mem_ratio', 2),
                ('train reserved (GiB)', 'train_reserved_gib', 2), ('infer peak (GiB)', 'infer_peak_gib', 2)]
        if result.get('official_anchor'):
            head += (f"; official code timed in a process of its own (torch {result['official_env']['torch']}, "
                     f"timm {result['official_env'].get('timm')}), '/ official' through the reference of "
                     f"each process, anchor {result['official_anchor']}")
            cols[1:1] = [('process', 'process', 0)]
            cols += [('train / official', 'train_vs_official', 2), ('infer / official', 'infer_vs_official', 2),
                     ('mem / official', 'mem_vs_official', 2)]
    else:
        head += f"{result['height']}x{result['width']}, {result.get('boxes', '-')} boxes/image"
        if result.get('compile_backbone'):
            head += f", backbones their configs leave eager compiled by blocks ({result['compile_backbone']})"
        cols = [('config', 'name', 0), ('backbone', 'backbone_compile', 0), ('params (M)', 'params_m', 1),
                ('optimizer', 'optimizer', 0), ('train (s/iter)', 'train_s_iter', 3),
                ('train / ref', 'train_ratio', 2), ('infer (img/s)', 'infer_img_s', 1),
                ('infer (ms/batch)', 'infer_ms', 1), ('infer time / ref', 'infer_ratio', 2),
                ('train peak (GiB)', 'train_peak_gib', 2), ('train reserved (GiB)', 'train_reserved_gib', 2),
                ('infer peak (GiB)', 'infer_peak_gib', 2), ('train warm-up (s)', 'train_warmup_s', 1),
                ('infer warm-up (s)', 'infer_warmup_s', 1)]
    if result.get('reference'):
        head += f"; ref = {result['reference']}"
    lines = [head, '', '| ' + ' | '.join(c[0] for c in cols) + ' |', '|' + '---|' * len(cols)]
    for r in result['rows']:
        if 'error' in r:
            lines.append(f"| {r.get('spec', r.get('name'))} | {r['error']} |")
            continue
        lines.append('| ' + ' | '.join(_fmt(r.get(k), nd) for _, k, nd in cols) + ' |')
    compiled = [(r.get('name', r.get('spec')), part, r[f'{part}_compile']) for r in result['rows']
                for part in ('train', 'infer')
                if (r.get(f'{part}_compile') or {}).get('graphs')]
    if compiled:
        lines += ['', 'Compiled during the warm-up (included in its seconds):']
        lines += [f'- {name}, {part}: {describe(stats)}' for name, part, stats in compiled]
    step = 'training iteration' if result['kind'] == 'model' else 'train step'  # with the optimizer / without
    for p in result.get('profiles', []):
        kernels = (f"; {p['kernels_per_step']:.0f} GPU kernels per step, {p['kernel_ms_per_step']:.1f} ms of "
                   'kernel time' if 'kernels_per_step' in p else '')
        if 'busy_ms_per_step' in p:
            kernels += (f", GPU busy {p['busy_ms_per_step']:.1f} of {p['span_ms_per_step']:.1f} ms per step, "
                        'idle while it waits for the CPU')
        lines += ['', f"Top ops of one {step} of {p['spec']} (self device time, {p['ms_per_step_total']:.1f} "
                  f'ms per step in all{kernels}):', '',
                  '| op | ms / step | share | calls / step |', '|---|---|---|---|']
        lines += [f"| `{o['op'][:70]}` | {o['ms_per_step']:.2f} | {100 * o['share']:.1f}% | "
                  f"{o['calls_per_step']:.0f} |" for o in p['ops']]
        if p.get('kernel_ms_by_class'):
            total = sum(p['kernel_ms_by_class'].values()) or 1.
            lines += ['', f"GPU kernel time of one {step} of {p['spec']} by kind of kernel:", '',
                      '| kind | ms / step | share |', '|---|---|---|']
            lines += [f'| {k} | {ms:.2f} | {100 * ms / total:.1f}% |' for k, ms in p['kernel_ms_by_class'].items()]
            lines += ['', '| kernel | kind | ms / step | calls / step |', '|---|---|---|---|']
            lines += [f"| `{k['kernel'][:80]}` | {k['kind']} | {k['ms_per_step']:.2f} | {k['calls_per_step']:.0f} |"
                      for k in p['kernels']]
    for p in result.get('phases', []):
        lines += ['', f"Host wall time of one {step} of {p['spec']} by phase ({p['step_ms']:.1f} ms per step; a "
                  "phase's own time, the phases inside it subtracted; syncs: times it waited for the GPU):", '',
                  '| phase | ms / step | share | calls / step | syncs / step |', '|---|---|---|---|---|']
        lines += [f"| {r['phase']} | {r['ms_per_step']:.2f} | {100 * r['share']:.1f}% | {r['calls_per_step']:.0f} | "
                  f"{_fmt(r['syncs_per_step'])} |" for r in p['phases']]
    for c in result.get('census', []):
        step = (f"; operations of a train step: {c['forward_ops']} forward + {c['backward_ops']} backward, "
                f"{c['train_gflop']:.1f} GFLOP" if 'forward_ops' in c else '')
        lines += ['', f"Casts in one forward of {c['spec']}: {c['casts']} ({c['param_casts']} of parameters, "
                  f"{c['activation_casts']} of activations); tensors saved for the backward: "
                  f"{c['saved_mib']:.1f} MiB (parameters excluded){step}. Most casts:", '',
                  '| module | kind | casts |', '|---|---|---|']
        lines += [f"| `{m['module']}` | {m['kind']} | {m['casts']} |" for m in c['by_module']]
        if c.get('gflop_by_op'):
            lines += ['', f"FLOPs of one train step of {c['spec']} by operator:", '', '| operator | GFLOP |', '|---|---|']
            lines += [f'| `{op}` | {g:.1f} |' for op, g in c['gflop_by_op'].items()]
    return '\n'.join(lines)


def write_result(result: Dict, json_path: Optional[str]) -> str:
    """Write ``result`` to ``json_path`` (if given) and return its Markdown table."""
    if json_path:
        write_json(json_path, result)
    return markdown_table(result)
