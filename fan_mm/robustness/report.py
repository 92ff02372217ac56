"""Tables and plots from ``robustness.json`` files, laid out like the FAN paper.

Definitions, for one model and one metric P (mIoU, bbox mAP, ...), a suite of corruptions C
and a severity policy giving the severities S_c evaluated for corruption c:

* P_clean: the metric on the clean test set.
* P_c = mean over s in S_c of P_{c,s}: the per-corruption value (FAN Tables 13/14 columns).
* category mean: the mean of P_c over the corruptions of a category (noise, blur, ...).
* Average = mean over c in C of P_c. This is Michaelis et al.'s mPC (mean performance under
  corruption, 1/N_c sum_c 1/N_s sum_s P_{c,s}) and the FAN paper's City-C / COCO-C column.
  Under the ``noise-1-3`` policy each noise corruption is averaged over severities 1-3 and
  weighs as much as any other corruption (SegFormer / FAN Cityscapes-C protocol).
* Retention = Average / P_clean: FAN's retention rate, Michaelis et al.'s rPC.

A results file that lacks an entry the policy needs is refused (naming the entries)
instead of being averaged with zeros, the silent failure of mmdet's robustness_eval.

Every table states the protocol its rows were made under (:func:`results_protocol`: suite,
severity policy, channel order, image format, seed, corruption engine) and the published
tables made under the same protocol (:func:`published_matches`). Files made under different
protocols are refused in one table, naming the fields that differ: their images differ, so
their numbers do not compare.
"""
import csv
import io
import json
import math
import os
import os.path as osp
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

from fan_mm.utils.files import atomic_write

from . import protocol

__all__ = ['ReportError', 'Summary', 'SHORT_NAMES', 'TABLE_ORDER', 'PROTOCOL_FIELDS', 'PUBLISHED_PROTOCOLS',
           'table_categories', 'default_metrics', 'results_protocol', 'published_matches', 'summarize',
           'write_report', 'markdown_tables', 'latex_tables']

# Column names of the FAN paper's tables.
SHORT_NAMES = {
    'motion_blur': 'Motion', 'defocus_blur': 'Defoc', 'glass_blur': 'Glass', 'gaussian_blur': 'Gauss',
    'zoom_blur': 'Zoom', 'gaussian_noise': 'Gauss', 'impulse_noise': 'Impul', 'shot_noise': 'Shot',
    'speckle_noise': 'Speck', 'brightness': 'Bright', 'contrast': 'Contr', 'saturate': 'Satur',
    'jpeg_compression': 'JPEG', 'pixelate': 'Pixel', 'elastic_transform': 'Elastic', 'snow': 'Snow',
    'spatter': 'Spatter', 'fog': 'Fog', 'frost': 'Frost',
}
SUITE_TITLES = {'cityscapes-c': 'Cityscapes-C', 'coco-c': 'COCO-C', 'imagenet-c': 'ImageNet-C corruptions',
                'holdout': 'hold-out corruptions', 'all': 'all 19 corruptions'}
POLICY_TEXT = {
    '1-5': 'every corruption averaged over severities 1-5',
    '1-3': 'every corruption averaged over severities 1-3 (as FAN\'s test_city_c.py)',
    'noise-1-3': 'noise corruptions averaged over severities 1-3, the others over 1-5 (SegFormer / FAN '
                 'Cityscapes-C protocol)',
}


# What decides which images a results file was evaluated on. Two files can share a table only if all
# of these agree (suite and policy as the table applies them; the others as recorded in the file's meta).
PROTOCOL_FIELDS = ('suite', 'policy', 'channel_order', 'image_format', 'seed', 'engine')

# The published protocols, in PROTOCOL_FIELDS terms, that a report can name. The official generators
# (NVlabs/FAN gen_city_c.py / gen_coco_c.py) read images with mmcv (BGR) and pass the array to
# imagecorruptions unchanged ('bgr_legacy'), and write the source's extension: Cityscapes PNG
# (lossless), COCO JPEG at OpenCV's default quality 95. mmdet's benchmark corrupts in the test pipeline
# (BGR, never re-encoded). Their random draws (one global seed, file-system order) cannot be
# reproduced, so a match means the same protocol, not the same pixels.
PUBLISHED_PROTOCOLS = (
    dict(name='FAN paper Tables 9 and 13 (Cityscapes-C)', task='mmseg', suite='cityscapes-c',
         policy=('noise-1-3', '1-3'), channel_order='bgr_legacy', image_format='lossless',
         note='the paper\'s text averages noise over severities 1-3 and the rest over 1-5 (noise-1-3), its '
              'released test_city_c.py runs 1-3 for all; the paper does not say which its numbers used'),
    dict(name='FAN paper Tables 10 and 14 (COCO-C)', task='mmdet', suite='cityscapes-c', policy=('1-5',),
         channel_order='bgr_legacy', image_format='jpeg-95', note=''),
    dict(name='Michaelis et al. COCO-C (mmdet test_robustness.py)', task='mmdet', suite='coco-c',
         policy=('1-5',), channel_order='bgr_legacy', image_format='lossless', note=''),
)


def _image_format(meta: dict) -> Optional[str]:
    """'lossless' (corrupted in memory, or a PNG copy: the same pixels), 'jpeg-<quality>', or None."""
    data = meta.get('data') or {}
    if meta.get('mode') == 'on-the-fly' or data.get('on_the_fly'):
        return 'lossless'
    settings = data.get('settings') or {}
    fmt = settings.get('format')
    if fmt == 'png':
        return 'lossless'
    if fmt == 'jpeg':
        return f'jpeg-{int(settings.get("jpeg_quality", 95))}'
    return fmt


def results_protocol(meta: dict, suite: Optional[str] = None, policy: Optional[str] = None) -> Dict[str, object]:
    """The protocol of a results file (``PROTOCOL_FIELDS``; None where its meta does not say).

    ``suite`` / ``policy`` override the recorded ones (a table may report a file on a sub-suite or on
    other severities). ``engine`` is the corruption engine's name, version and source digest: a
    change to the corruption code can change pixels.
    """
    versions = meta.get('versions') or {}
    engine = None
    if versions.get('engine_source_sha256'):
        engine = (f'{versions.get("engine", "?")} {versions.get("engine_version", "?")} '
                  f'(source {versions["engine_source_sha256"][:12]})')
    return dict(suite=suite or meta.get('suite'), policy=policy or meta.get('policy'),
                channel_order=meta.get('channel_order'), image_format=_image_format(meta),
                seed=meta.get('seed'), engine=engine)


def published_matches(task: Optional[str], proto: Dict[str, object]) -> List[str]:
    """Names (with caveats) of the published tables whose protocol ``proto`` follows."""
    out = []
    for pub in PUBLISHED_PROTOCOLS:
        if (task == pub['task'] and proto.get('suite') == pub['suite'] and proto.get('policy') in pub['policy']
                and proto.get('channel_order') == pub['channel_order']
                and proto.get('image_format') == pub['image_format']):
            out.append(pub['name'] + (f' ({pub["note"]})' if pub['note'] else ''))
    return out


# Column order of the FAN paper's Tables 13 and 14 (Cityscapes-C and COCO-C: both use the 16
# corruptions of Kamann & Rother); other suites follow the engine's order.
TABLE_ORDER = {
    'cityscapes-c': (('blur', ('motion_blur', 'defocus_blur', 'glass_blur', 'gaussian_blur')),
                     ('noise', ('gaussian_noise', 'impulse_noise', 'shot_noise', 'speckle_noise')),
                     ('digital', ('brightness', 'contrast', 'saturate', 'jpeg_compression')),
                     ('weather', ('snow', 'spatter', 'fog', 'frost'))),
}


def table_categories(suite: str) -> Dict[str, List[str]]:
    """``{category: [corruption, ...]}`` of ``suite`` in the order its paper table uses."""
    engine = protocol.suite_categories(suite)
    layout = TABLE_ORDER.get(suite)
    if layout is not None and {c: set(v) for c, v in layout} == {c: set(v) for c, v in engine.items()}:
        return {cat: list(names) for cat, names in layout}
    return engine


class ReportError(ValueError):
    """Results cannot be reported as asked (message names the file and what is missing)."""


@dataclass
class Summary:
    """All numbers of one model for one metric (values in display units, e.g. percent)."""
    name: str
    source: str
    task: str
    metric: str
    scale: float
    suite: Optional[str]  # None: real-shift sets only
    policy: Optional[str]
    severities: Dict[str, List[int]]
    categories: Dict[str, List[str]]
    clean: float
    per_severity: Dict[str, Dict[str, float]]
    per_corruption: Dict[str, float]
    category_means: Dict[str, float]
    average: float  # = mPC
    retention: float  # = rPC
    protocol: Dict[str, object] = field(default_factory=dict)  # see results_protocol
    # real adverse conditions: 'acdc/fog' -> value (display units), and how tables name them ('ACDC fog')
    real_shift: Dict[str, float] = field(default_factory=dict)
    real_shift_labels: Dict[str, str] = field(default_factory=dict)
    meta: dict = field(default_factory=dict, repr=False)

    @property
    def mpc(self) -> float:
        return self.average

    @property
    def rpc(self) -> float:
        return self.retention


def default_metrics(results: dict, source: str = '<results>') -> List[str]:
    """mIoU for mmseg; bbox (and segm when present) mAP for mmdet; else the first metric. For a file evaluated
    on real-shift sets alone, only metrics that its real-shift runs have too (a set with box annotations
    only, COCO-O say, gives no mask mAP)."""
    clean = dict(results.get('clean', {}))
    if not clean:
        raise ReportError(f'{source}: the results have no clean metrics')
    if results.get('meta', {}).get('suite') is None and results.get('real_shift'):
        in_all = [set(m) for conditions in results['real_shift'].values() for m in conditions.values()]
        clean = {k: v for k, v in clean.items() if all(k in m for m in in_all)}
        if not clean:
            raise ReportError(f'{source}: no clean metric is also in every real-shift result')
    for wanted in (['mIoU'], ['coco/bbox_mAP', 'coco/segm_mAP'], ['pascal_voc/mAP']):
        found = [m for m in wanted if m in clean]
        if found:
            return found
    return [sorted(clean)[0]]


def _scale(metric: str, task: Optional[str]) -> float:
    # CocoMetric reports fractions; the papers print percent. IoUMetric already gives percent.
    return 100.0 if metric.startswith('coco/') or metric.startswith('pascal_voc/') else 1.0


def summarize(results: dict, metric: str, name: Optional[str] = None, source: str = '<results>',
              suite: Optional[str] = None, policy: Optional[str] = None,
              severities: Optional[Sequence[int]] = None, scale: Optional[float] = None,
              corruptions: Optional[Sequence[str]] = None) -> Summary:
    """Compute the report numbers of one results dict for ``metric``.

    ``suite``/``policy``/``severities`` default to the ones recorded in the results' meta
    (so a file evaluated on all 19 corruptions can be reported on ``coco-c`` only); the
    table covers every corruption of the suite unless ``corruptions`` names a subset.
    """
    meta = results.get('meta', {})
    suite = suite or meta.get('suite')
    if suite is None:
        if results.get('real_shift'):  # evaluated on real-shift sets only (test_robustness.py --shifts)
            return _summarize_real_only(results, metric, name, source, scale)
        raise ReportError(f'{source}: no suite recorded in meta and no real-shift results; pass --suite')
    if severities:
        policy_label, plan = protocol.severity_plan(suite, corruptions, None, severities)
    elif policy is not None:
        policy_label, plan = protocol.severity_plan(suite, corruptions, policy)
    elif meta.get('policy') not in (None, 'custom'):
        policy_label, plan = protocol.severity_plan(suite, corruptions, meta['policy'])
    elif meta.get('severities'):
        sevs = sorted({int(v) for vs in meta['severities'].values() for v in vs})
        policy_label, plan = protocol.severity_plan(suite, corruptions, None, sevs)
    else:
        policy_label, plan = protocol.severity_plan(suite, corruptions)
    # The table covers the whole suite (or the subset asked for); missing entries are refused below.
    clean = results.get('clean', {})
    if metric not in clean:
        raise ReportError(f'{source}: metric {metric!r} is not in the clean results (available: {sorted(clean)})')
    corrupted_ = results.get('corrupted', {})
    missing = []
    for c, sevs in plan.items():
        for s in sevs:
            entry = corrupted_.get(c, {}).get(str(s))
            if entry is None or metric not in entry or not _finite(entry[metric]):
                missing.append(f'{c}/{s}')
    if missing:
        raise ReportError(
            f'{source}: {len(missing)} of {sum(len(v) for v in plan.values())} (corruption/severity) entries that '
            f'suite {suite!r} with policy {policy_label!r} needs are missing for {metric!r}: {missing[:12]}'
            f'{" ..." if len(missing) > 12 else ""}. Finish the evaluation (run test_robustness.py again), or '
            'report a subset with --suite / --policy / --severities')
    k = _scale(metric, meta.get('task')) if scale is None else float(scale)
    per_sev = {c: {str(s): k * float(corrupted_[c][str(s)][metric]) for s in sevs} for c, sevs in plan.items()}
    per_corr = {c: _mean(per_sev[c].values()) for c in plan}
    cats = {cat: [c for c in names if c in plan] for cat, names in table_categories(suite).items()}
    cats = {cat: names for cat, names in cats.items() if names}
    cat_means = {cat: _mean(per_corr[c] for c in names) for cat, names in cats.items()}
    average = _mean(per_corr.values())
    clean_v = k * float(clean[metric])
    retention = average / clean_v if clean_v else float('nan')
    real, real_labels = _real_shift(results, metric, k)
    return Summary(name=name or _default_name(meta, source), source=source, task=meta.get('task', '?'),
                   metric=metric, scale=k, suite=suite, policy=policy_label,
                   severities={c: list(v) for c, v in plan.items()}, categories=cats, clean=clean_v,
                   per_severity=per_sev, per_corruption=per_corr, category_means=cat_means, average=average,
                   retention=retention, protocol=results_protocol(meta, suite, policy_label), real_shift=real,
                   real_shift_labels=real_labels, meta=meta)


def _summarize_real_only(results: dict, metric: str, name: Optional[str], source: str,
                         scale: Optional[float]) -> Summary:
    """The Summary of a file with a clean run and real-shift runs but no corruption suite."""
    meta = results.get('meta', {})
    clean = results.get('clean', {})
    if metric not in clean:
        raise ReportError(f'{source}: metric {metric!r} is not in the clean results (available: {sorted(clean)})')
    k = _scale(metric, meta.get('task')) if scale is None else float(scale)
    real, real_labels = _real_shift(results, metric, k)
    if not real:
        raise ReportError(f'{source}: no real-shift result has {metric!r}')
    return Summary(name=name or _default_name(meta, source), source=source, task=meta.get('task', '?'),
                   metric=metric, scale=k, suite=None, policy=None, severities={}, categories={},
                   clean=k * float(clean[metric]), per_severity={}, per_corruption={}, category_means={},
                   average=float('nan'), retention=float('nan'), protocol=results_protocol(meta),
                   real_shift=real, real_shift_labels=real_labels, meta=meta)


def _real_shift(results: dict, metric: str, scale: float):
    """({'set/condition': value}, {'set/condition': label}) of the real-shift runs that have ``metric``."""
    shifts_meta = results.get('meta', {}).get('shifts') or {}
    values, labels = {}, {}
    for name, conditions in (results.get('real_shift') or {}).items():
        m = shifts_meta.get(name, {})
        for condition, metrics in conditions.items():
            if metric in metrics and _finite(metrics[metric]):
                key = f'{name}/{condition}'
                values[key] = scale * float(metrics[metric])
                labels[key] = f'{m.get("title", name)} {m.get("condition_labels", {}).get(condition, condition)}'
    return values, labels


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _default_name(meta: dict, source: str) -> str:
    config = meta.get('config')
    if config:
        return osp.splitext(osp.basename(config))[0]
    return osp.splitext(osp.basename(source))[0]


# ----------------------------------------------------------------------------- text tables


def _f(v: float, digits: int = 1) -> str:
    return 'n/a' if v is None or not math.isfinite(v) else f'{v:.{digits}f}'


def _pct(v: float) -> str:
    return 'n/a' if v is None or not math.isfinite(v) else f'{100 * v:.1f}%'


def _metric_label(s: Summary) -> str:
    name = {'mIoU': 'mIoU', 'coco/bbox_mAP': 'box mAP', 'coco/segm_mAP': 'mask mAP'}.get(s.metric, s.metric)
    return f'{name} (%)' if s.scale == 100.0 or s.metric == 'mIoU' else name


def caption(summaries: Sequence[Summary]) -> str:
    s = summaries[0]
    suite = SUITE_TITLES.get(s.suite, s.suite)
    if s.policy in POLICY_TEXT:
        policy = f'severity policy {s.policy}: {POLICY_TEXT[s.policy]}'
    else:
        sevs = sorted({tuple(v) for v in s.severities.values()})
        policy = 'severities ' + '; '.join(','.join(map(str, v)) for v in sevs)
    return (f'{_metric_label(s)} on {suite} ({len(s.per_corruption)} corruptions), {policy}. '
            'Average = mean over corruptions of the per-corruption means (= mPC); '
            'Retention = Average / Clean (= rPC).')


def protocol_text(s: Summary) -> str:
    """One line: the protocol of a table's rows and the published tables it is comparable with."""
    p = s.protocol
    text = (f'Protocol: suite {p.get("suite")}, policy {p.get("policy")}, channel order {p.get("channel_order")}, '
            f'images {p.get("image_format")}, seed {p.get("seed")}, engine {p.get("engine")}. ')
    matches = published_matches(s.task, p)
    return text + ('Same protocol as ' + '; '.join(matches) + '.' if matches else
                   'No published table was made under this protocol.')


def _check_comparable(summaries: Sequence[Summary]) -> None:
    first = summaries[0]
    for s in summaries[1:]:
        if (s.suite, s.metric, s.severities) != (first.suite, first.metric, first.severities):
            raise ReportError(f'{s.source} ({s.suite}, {s.policy}, {s.metric}) cannot share a table with '
                              f'{first.source} ({first.suite}, {first.policy}, {first.metric}); pass the same '
                              '--suite and --policy for all files (a file without a suite, real shifts only, '
                              'is reported on its own)')
        if s.suite is None:  # real shifts only: no corrupted images, so no corruption protocol to compare
            continue
        differ = [k for k in PROTOCOL_FIELDS if s.protocol.get(k) != first.protocol.get(k)]
        if differ:
            details = '; '.join(f'{k}: {first.protocol.get(k)!r} in {first.source}, {s.protocol.get(k)!r} in '
                                f'{s.source}' for k in differ)
            raise ReportError(f'{s.source} and {first.source} were made under different protocols and cannot '
                              f'share a table (their corrupted images differ): {details}')


def _encoder_size(s: Summary) -> Optional[str]:
    n = s.meta.get('params', {}).get('backbone')
    return None if n is None else (f'{n / 1e6:.1f}M' if n >= 1e5 else f'{n / 1e3:.1f}K')


def _rows_overview(summaries):
    sizes = [_encoder_size(s) for s in summaries]
    with_size = all(v is not None for v in sizes)
    header = ['Model'] + (['Encoder size'] if with_size else []) + ['Clean', 'Corrupted (mPC)', 'Retention (rPC)'] + \
        [c.capitalize() for c in summaries[0].categories]
    rows = [[s.name] + ([size] if with_size else []) + [_f(s.clean), _f(s.average), _pct(s.retention)] +
            [_f(s.category_means[c]) for c in s.categories] for s, size in zip(summaries, sizes)]
    return header, rows


def _rows_per_corruption(summaries):
    cats = summaries[0].categories
    header = ['Model', 'Average'] + [f'{cat.capitalize()}: {SHORT_NAMES.get(c, c)}'
                                     for cat, names in cats.items() for c in names]
    rows = [[s.name, _f(s.average)] + [_f(s.per_corruption[c]) for names in cats.values() for c in names]
            for s in summaries]
    return header, rows


def _rows_severity(s: Summary):
    sevs = sorted({v for vs in s.severities.values() for v in vs})
    header = ['Corruption', 'Category'] + [f'Sev {v}' for v in sevs] + ['Mean']
    rows = []
    for cat, names in s.categories.items():
        for c in names:
            rows.append([c, cat] + [_f(s.per_severity[c][str(v)]) if str(v) in s.per_severity[c] else '-'
                                    for v in sevs] + [_f(s.per_corruption[c])])
    return header, rows


def _md(header, rows) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(r) + ' |' for r in rows]
    return '\n'.join(lines)


def _real_keys(summaries) -> List[str]:
    keys: List[str] = []
    for s in summaries:
        keys += [k for k in s.real_shift if k not in keys]
    return keys


def _rows_synthetic_and_real(summaries):
    """One row per model: clean, synthetic mean and per category, each real condition; each with its retention."""
    keys = _real_keys(summaries)
    labels = {k: v for s in summaries for k, v in s.real_shift_labels.items()}
    synthetic = summaries[0].suite is not None
    header = ['Model', 'Clean'] + \
        (['Synthetic (mPC)'] + [f'Synthetic: {c}' for c in summaries[0].categories] if synthetic else []) + \
        [f'Real: {labels[k]}' for k in keys]

    def cell(value, clean):
        return f'{_f(value)} ({_pct(value / clean)})' if clean else _f(value)
    rows = [[s.name, _f(s.clean)] +
            ([cell(s.average, s.clean)] + [cell(s.category_means[c], s.clean) for c in s.categories]
             if synthetic else []) +
            [cell(s.real_shift[k], s.clean) if k in s.real_shift else '-' for k in keys] for s in summaries]
    return header, rows


def real_shift_text(summaries: Sequence[Summary]) -> str:
    """The protocol of the real-shift columns: which set, split and folder each comes from."""
    sets: Dict[str, dict] = {}  # every model's sets: conditions and folders merged
    for s in summaries:
        for name, m in (s.meta.get('shifts') or {}).items():
            entry = sets.setdefault(name, dict(title=m.get('title', name), conditions=[], roots=[]))
            entry['conditions'] += [m.get('condition_labels', {}).get(c, c) for c in m.get('conditions', [])
                                    if m.get('condition_labels', {}).get(c, c) not in entry['conditions']]
            if m.get('data_root') not in entry['roots']:
                entry['roots'].append(m.get('data_root'))
    parts = [f'{e["title"]}: real images, val split, conditions {", ".join(e["conditions"])}, read from '
             f'{" and ".join(map(str, e["roots"]))}' for e in sets.values()]
    return ('Real-shift columns: ' + '; '.join(parts) + '. Retention = accuracy on the set / clean accuracy '
            '(the clean test set of the config); each value is the config\'s test metric on that set.')


def markdown_tables(summaries: Sequence[Summary]) -> str:
    """Markdown: overview (Tables 9/10), per corruption (Tables 13/14), per severity per model; with real-shift
    results, one table of clean, synthetic (per category) and real (per condition) accuracy and retention."""
    _check_comparable(summaries)
    if summaries[0].suite is None:  # real-shift sets only
        return '\n'.join([f'### Real adverse conditions: {_metric_label(summaries[0])}', '',
                          _md(*_rows_synthetic_and_real(summaries)), '',
                          f'*{_metric_label(summaries[0])}, value (retention).*', '', real_shift_text(summaries), ''])
    cap = caption(summaries)
    out = [f'### Robustness overview: {_metric_label(summaries[0])}', '', _md(*_rows_overview(summaries)), '',
           f'*{cap}*', '', protocol_text(summaries[0]), '']
    if _real_keys(summaries):
        out += ['### Synthetic corruptions and real adverse conditions', '',
                _md(*_rows_synthetic_and_real(summaries)), '',
                f'*{_metric_label(summaries[0])}, value (retention). Synthetic: {cap}*', '',
                real_shift_text(summaries), '']
    out += ['### Per corruption', '', _md(*_rows_per_corruption(summaries)), '', f'*{cap}*', '']
    for s in summaries:
        out += [f'#### {s.name}: per severity (clean {_f(s.clean)})', '', _md(*_rows_severity(s)), '']
    return '\n'.join(out)


_TEX = {'\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '_': r'\_', '#': r'\#', '$': r'\$',
        '{': r'\{', '}': r'\}', '~': r'\textasciitilde{}', '^': r'\textasciicircum{}'}


def _tex_escape(text: str) -> str:
    return ''.join(_TEX.get(ch, ch) for ch in text)


def _tex_comment(text: str) -> str:
    """``text`` as one LaTeX comment line (line breaks folded: one would end the comment), escaped so that
    it can be moved into a caption or footnote as it is."""
    return '% ' + ' '.join(_tex_escape(text).split())


def latex_tables(summaries: Sequence[Summary]) -> str:
    """LaTeX (booktabs): the overview and the per-corruption table with grouped headers; with real-shift results,
    the table of clean, synthetic (per category) and real (per condition) accuracy with retention."""
    _check_comparable(summaries)
    s0 = summaries[0]
    if s0.suite is None:  # real-shift sets only
        return '\n'.join([r'% generated by tools/robustness_report.py; needs \usepackage{booktabs,graphicx}'] +
                         _latex_real_table(summaries, f'{_metric_label(s0)}, value (retention). '
                                                      f'{real_shift_text(summaries)}'))
    cap = _tex_escape(caption(summaries))
    # The protocol line of the Markdown report, as a comment in every table: it travels with a table
    # pasted into a paper without changing what the paper shows.
    proto = _tex_comment(protocol_text(s0))
    cats = s0.categories
    lines = [r'% generated by tools/robustness_report.py; needs \usepackage{booktabs,multirow,graphicx}',
             r'\begin{table}[t]', r'\centering', r'\caption{' + cap + '}', proto,
             r'\begin{tabular}{l' + 'c' * (3 + len(cats)) + '}', r'\toprule',
             ' & '.join(['Model', 'Clean', 'Corrupted', 'Retention'] + [c.capitalize() for c in cats]) + r' \\',
             r'\midrule']
    for s in summaries:
        lines.append(' & '.join([_tex_escape(s.name), _f(s.clean), _f(s.average), _tex_escape(_pct(s.retention))] +
                                [_f(s.category_means[c]) for c in cats]) + r' \\')
    lines += [r'\bottomrule', r'\end{tabular}', r'\end{table}', '']
    n = sum(len(v) for v in cats.values())
    lines += [r'\begin{table*}[t]', r'\centering', r'\caption{' + cap + '}', proto,
              r'\resizebox{\textwidth}{!}{%',
              r'\begin{tabular}{lc' + 'c' * n + '}', r'\toprule',
              r'\multirow{2}{*}{Model} & \multirow{2}{*}{Average} & ' +
              ' & '.join(r'\multicolumn{%d}{c}{%s}' % (len(v), c.capitalize()) for c, v in cats.items()) + r' \\']
    col, rules = 3, []
    for v in cats.values():
        rules.append(r'\cmidrule(lr){%d-%d}' % (col, col + len(v) - 1))
        col += len(v)
    lines += [' '.join(rules), ' & & ' + ' & '.join(SHORT_NAMES.get(c, _tex_escape(c)) for v in cats.values()
                                                    for c in v) + r' \\', r'\midrule']
    for s in summaries:
        lines.append(' & '.join([_tex_escape(s.name), _f(s.average)] +
                                [_f(s.per_corruption[c]) for v in cats.values() for c in v]) + r' \\')
    lines += [r'\bottomrule', r'\end{tabular}}', r'\end{table*}', '']
    if _real_keys(summaries):
        lines += _latex_real_table(summaries, f'{_metric_label(s0)}, value (retention). Synthetic: '
                                              f'{caption(summaries)} {real_shift_text(summaries)}', proto)
    return '\n'.join(lines)


def _latex_real_table(summaries: Sequence[Summary], caption_text: str, proto: Optional[str] = None) -> List[str]:
    header, rows = _rows_synthetic_and_real(summaries)
    lines = [r'\begin{table*}[t]', r'\centering', r'\caption{' + _tex_escape(caption_text) + '}']
    if proto:
        lines.append(proto)
    lines += [r'\resizebox{\textwidth}{!}{%', r'\begin{tabular}{l' + 'c' * (len(header) - 1) + '}', r'\toprule',
              ' & '.join(_tex_escape(h) for h in header) + r' \\', r'\midrule']
    lines += [' & '.join(_tex_escape(c) for c in row) + r' \\' for row in rows]
    return lines + [r'\bottomrule', r'\end{tabular}}', r'\end{table*}', '']


def _csv_text(summaries: Sequence[Summary]) -> Dict[str, str]:
    out = {}
    if summaries[0].suite is not None:
        out.update(_csv_synthetic(summaries))
    if _real_keys(summaries):  # real_shift_<metric>.csv: one row per model and real condition
        real_io = io.StringIO()
        w = csv.writer(real_io, lineterminator='\n')
        w.writerow(['model', 'metric', 'set', 'condition', 'label', 'value', 'clean', 'retention'])
        for s in summaries:
            for key, value in s.real_shift.items():
                name, condition = key.split('/', 1)
                retention = f'{value / s.clean:.6f}' if s.clean else ''
                w.writerow([s.name, s.metric, name, condition, s.real_shift_labels[key], f'{value:.4f}',
                            f'{s.clean:.4f}', retention])
        out['real_shift'] = real_io.getvalue()
    return out


def _csv_synthetic(summaries: Sequence[Summary]) -> Dict[str, str]:
    summary_io, detail_io = io.StringIO(), io.StringIO()
    w = csv.writer(summary_io, lineterminator='\n')
    cats = list(summaries[0].categories)
    w.writerow(['model', 'metric', 'suite', 'policy', 'clean', 'average_mPC', 'retention_rPC'] +
               [f'{c}_mean' for c in cats])
    for s in summaries:
        w.writerow([s.name, s.metric, s.suite, s.policy, f'{s.clean:.4f}', f'{s.average:.4f}',
                    f'{s.retention:.6f}'] + [f'{s.category_means[c]:.4f}' for c in cats])
    w = csv.writer(detail_io, lineterminator='\n')
    w.writerow(['model', 'metric', 'category', 'corruption', 'severity', 'value'])
    for s in summaries:
        for cat, names in s.categories.items():
            for c in names:
                for sev, v in s.per_severity[c].items():
                    w.writerow([s.name, s.metric, cat, c, sev, f'{v:.4f}'])
                w.writerow([s.name, s.metric, cat, c, 'mean', f'{s.per_corruption[c]:.4f}'])
    return {'summary': summary_io.getvalue(), 'per_corruption': detail_io.getvalue()}


# ----------------------------------------------------------------------------- plots


def _plot_retention(summaries: Sequence[Summary], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    s0 = summaries[0]
    real = _real_keys(summaries)
    real_labels = {k: v for s in summaries for k, v in s.real_shift_labels.items()}
    names = [c for v in s0.categories.values() for c in v]
    x = np.arange(len(names) + len(real))
    width = 0.8 / len(summaries)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(x) + 2), 4.0))
    for i, s in enumerate(summaries):
        ret = [100 * s.per_corruption[c] / s.clean if s.clean else np.nan for c in names]
        ret += [100 * s.real_shift[k] / s.clean if s.clean and k in s.real_shift else np.nan for k in real]
        label = s.name if s.suite is None else f'{s.name} (mean {100 * s.retention:.1f}%)'
        ax.bar(x - 0.4 + width * (i + 0.5), ret, width, label=label)
    ax.set_xticks(x, [SHORT_NAMES.get(c, c) for c in names] + [real_labels[k] for k in real], rotation=45, ha='right')
    bands = dict(s0.categories, **({'real shift': real} if real else {}))
    start = 0
    for cat, v in bands.items():  # category bands (the real conditions last)
        ax.axvspan(start - 0.5, start + len(v) - 0.5, color='0.93' if list(bands).index(cat) % 2 else '1.0',
                   zorder=0)
        ax.text(start + (len(v) - 1) / 2, 1.01, cat, transform=ax.get_xaxis_transform(), ha='center', va='bottom')
        start += len(v)
    ax.axhline(100, color='0.5', lw=0.8, ls='--')
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_ylabel('retention (% of clean)')
    if s0.suite is None:
        ax.set_title(f'Retention under real adverse conditions: {_metric_label(s0)}', fontsize=9, pad=18)
    else:
        ax.set_title(f'Retention per corruption: {_metric_label(s0)}, {SUITE_TITLES.get(s0.suite, s0.suite)}, '
                     f'policy {s0.policy}', fontsize=9, pad=18)
    ax.legend(fontsize=8, loc='lower left')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_severity(s: Summary, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    cats = list(s.categories.items())
    fig, axes = plt.subplots(1, len(cats), figsize=(3.2 * len(cats), 3.2), sharey=True, squeeze=False)
    for ax, (cat, names) in zip(axes[0], cats):
        for c in names:
            sev = sorted(int(v) for v in s.per_severity[c])
            ax.plot([0] + sev, [s.clean] + [s.per_severity[c][str(v)] for v in sev], marker='o', ms=3,
                    label=SHORT_NAMES.get(c, c))
        ax.set_title(cat)
        ax.set_xlabel('severity (0 = clean)')
        ax.set_xticks(range(0, 6))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(_metric_label(s))
    fig.suptitle(f'{s.name}: {_metric_label(s)} against severity', fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------- entry point


def _safe(text: str) -> str:
    return ''.join(ch if ch.isalnum() or ch in '-_.' else '_' for ch in text)


def write_report(results_files: Sequence[str], out_dir: str, names: Optional[Sequence[str]] = None,
                 metrics: Optional[Sequence[str]] = None, suite: Optional[str] = None,
                 policy: Optional[str] = None, severities: Optional[Sequence[int]] = None,
                 corruptions: Optional[Sequence[str]] = None,
                 formats: Sequence[str] = ('md', 'csv', 'tex', 'json', 'png')) -> Dict[str, List[str]]:
    """Write the report of one or more results files into ``out_dir``; returns {format: [paths]}.

    Per metric (default: mIoU for mmseg, box and mask mAP for mmdet) it writes
    ``report_<metric>.md``, ``summary_<metric>.csv``, ``per_corruption_<metric>.csv``,
    ``tables_<metric>.tex``, ``report.json`` (everything), ``retention_<metric>.png`` and
    ``severity_<metric>_<model>.png``; with real-shift results also ``real_shift_<metric>.csv`` (their
    columns are in the Markdown, LaTeX and JSON reports and the retention plot too).
    """
    from .evaluation import RobustnessError, load_results
    unknown = set(formats) - {'md', 'csv', 'tex', 'json', 'png'}
    if unknown:
        raise ReportError(f'unknown format(s) {sorted(unknown)}; choose from md csv tex json png')
    if names and len(names) != len(results_files):
        raise ReportError(f'--names has {len(names)} entries for {len(results_files)} results files')
    loaded = []
    for path in results_files:
        try:
            loaded.append(load_results(path))
        except RobustnessError as e:
            raise ReportError(str(e)) from None
    if metrics is None:
        per_file = [default_metrics(r, p) for r, p in zip(loaded, results_files)]
        metrics = [m for m in per_file[0] if all(m in f for f in per_file)]
        if not metrics:
            raise ReportError(f'the files have no metric in common ({dict(zip(results_files, per_file))}); pass --metric')
    if names is None:
        names = [_default_name(r.get('meta', {}), p) for r, p in zip(loaded, results_files)]
        if len(set(names)) < len(names):  # same config evaluated twice: disambiguate by file
            names = [f'{n} ({osp.basename(osp.dirname(osp.abspath(p))) or p})' for n, p in zip(names, results_files)]
    # every table is computed (and refused) before any file is written: no half-updated report folder
    per_metric = {}
    for metric in metrics:
        per_metric[metric] = [summarize(r, metric, n, p, suite, policy, severities, corruptions=corruptions)
                              for r, n, p in zip(loaded, names, results_files)]
        _check_comparable(per_metric[metric])
    os.makedirs(out_dir, exist_ok=True)
    written: Dict[str, List[str]] = {f: [] for f in formats}
    everything = {}
    for metric, summaries in per_metric.items():
        tag = _safe(metric.replace('coco/', '').replace('/', '_'))
        if 'md' in formats:
            path = osp.join(out_dir, f'report_{tag}.md')
            _write_text(path, markdown_tables(summaries))
            written['md'].append(path)
        if 'tex' in formats:
            path = osp.join(out_dir, f'tables_{tag}.tex')
            _write_text(path, latex_tables(summaries))
            written['tex'].append(path)
        if 'csv' in formats:
            for kind, text in _csv_text(summaries).items():
                path = osp.join(out_dir, f'{kind}_{tag}.csv')
                _write_text(path, text)
                written['csv'].append(path)
        if 'png' in formats:
            path = osp.join(out_dir, f'retention_{tag}.png')
            _plot_retention(summaries, path)
            written['png'].append(path)
            for s in summaries:
                if s.suite is None:  # no severities to plot
                    continue
                path = osp.join(out_dir, f'severity_{tag}_{_safe(s.name)}.png')
                _plot_severity(s, path)
                written['png'].append(path)
        everything[metric] = dict(caption=caption(summaries) if summaries[0].suite else real_shift_text(summaries),
                                  protocol=summaries[0].protocol,
                                  comparable_with=published_matches(summaries[0].task, summaries[0].protocol),
                                  models=[_json_safe({k: v for k, v in asdict(s).items() if k != 'meta'})
                                          for s in summaries])
    if 'json' in formats:
        path = osp.join(out_dir, 'report.json')
        _write_text(path, json.dumps(everything, indent=1) + '\n')
        written['json'].append(path)
    return written


def _json_safe(value):
    """NaN / inf (e.g. the synthetic mean of a file without a suite) as null: report.json stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_text(path: str, text: str) -> None:
    atomic_write(path, (text if text.endswith('\n') else text + '\n').encode('utf-8'))
