"""Evaluate one checkpoint on the clean test set and on every (corruption, severity).

``evaluate_robustness`` builds mmengine's Runner (and so the model, and the checkpoint
load) once, then swaps the test dataloader for each run: the clean set, then each
corrupted variant, read from a synthesised -C folder (``corrupted_root``) or corrupted on
the fly (``CorruptImage``). After every run ``<work_dir>/robustness.json`` is rewritten
atomically::

    {"clean": {metric: value},
     "corrupted": {corruption: {"1": {metric: value}, ...}},
     "meta": {config, checkpoint, suite, policy, seed, versions, ...}}

Started again with the same model, data and protocol, it skips what is already there.
Works for any mmseg (``IoUMetric``: mIoU) or mmdet (``CocoMetric``: bbox / segm mAP) config
and under ``--launcher pytorch``: every image's corruption depends only on its path, and
the metrics only on the set of predictions, so the numbers do not depend on the number of
processes.

Departures from mmdet's ``tools/analysis_tools/test_robustness.py`` (its known bugs are
listed in docs/robustness.md): results are written without ``--out``; missing severities are
never averaged as zeros (the report refuses them); segm and bbox are both kept; backbones
are not touched (``init_cfg`` is left alone: testing never initialises weights); the
corruption of an image does not depend on the seed of the Runner, worker count or batch.
"""
import copy
import hashlib
import json
import logging
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

from fan_mm.engine.runner import build_runner, check_checkpoint, codebase_of, load_config
from fan_mm.utils.environment import collect_environment
from fan_mm.utils.files import atomic_write

from . import protocol
from .codec import output_name
from .config import add_custom_import, corrupt_on_the_fly, use_corrupted_copy
from .synthesis import load_manifest

__all__ = ['RESULTS_NAME', 'RobustnessError', 'evaluate_robustness', 'load_results', 'planned_runs']

RESULTS_NAME = 'robustness.json'
RESULTS_FORMAT = 'fan_mm.robustness_results'
# Meta entries that must agree for results to be merged into an existing file.
_IDENTITY_KEYS = ('task', 'config_sha256', 'checkpoint_sha256', 'mode', 'seed', 'channel_order', 'data')


class RobustnessError(RuntimeError):
    """The evaluation cannot run as asked (message says why and what to do)."""


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def _config_digest(cfg) -> str:
    """Digest of what decides the numbers (run bookkeeping such as work_dir excluded)."""
    d = cfg.to_dict()
    for key in ('work_dir', 'launcher', 'load_from', 'resume', 'custom_imports'):
        d.pop(key, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _versions(task: str) -> Dict[str, object]:
    """The environment record (fan_mm.utils.environment) and the corruption engine's identity."""
    versions = collect_environment(('fan_mm', 'torch', 'mmengine', 'mmcv', task))
    versions.update(protocol.engine_info())
    return versions


def load_results(path: str) -> dict:
    """Read a robustness.json; raises ``RobustnessError`` naming the file when it is not one."""
    try:
        with open(path, 'rb') as f:
            results = json.loads(f.read().decode('utf-8'))
    except FileNotFoundError:
        raise RobustnessError(f'{path}: no such results file') from None
    except (OSError, ValueError) as e:
        raise RobustnessError(f'{path}: not readable as JSON ({e})') from None
    if not isinstance(results, dict) or not {'clean', 'corrupted', 'meta'} <= set(results):
        raise RobustnessError(f'{path}: not a robustness results file (needs "clean", "corrupted" and "meta"; '
                              f'found {sorted(results) if isinstance(results, dict) else type(results).__name__})')
    return results


def _write_results(path: str, results: dict) -> None:
    # atomic and flushed: a crash between runs leaves the previous complete file, which a rerun resumes
    atomic_write(osp.abspath(path), (json.dumps(results, indent=1, sort_keys=False) + '\n').encode('utf-8'),
                 fsync=True)


def _plain(metrics: dict) -> Dict[str, float]:
    """Metric dicts hold numpy scalars and sometimes strings (per-class tables): keep numbers."""
    out = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def planned_runs(plan: Dict[str, List[int]], results: Optional[dict] = None) -> List[Optional[tuple]]:
    """Runs still to do: ``None`` for clean, then (corruption, severity) in protocol order."""
    results = results or {}
    runs: List[Optional[tuple]] = [] if results.get('clean') else [None]
    done = results.get('corrupted', {})
    for c, sevs in plan.items():
        for s in sevs:
            if not done.get(c, {}).get(str(s)):
                runs.append((c, s))
    return runs


def _param_counts(model) -> Dict[str, int]:
    """Parameter counts of the model and of its backbone ("encoder size" in the FAN tables)."""
    model = getattr(model, 'module', model)  # DDP wrapper
    counts = {'model': int(sum(p.numel() for p in model.parameters()))}
    backbone = getattr(model, 'backbone', None)
    if backbone is not None:
        counts['backbone'] = int(sum(p.numel() for p in backbone.parameters()))
    return counts


def _check_files(dataset, what: str, fmt: str) -> None:
    """Fail before a run (not in its middle) when images of ``dataset`` are missing.

    Paths are checked under the name the copy stores them (``x.jpg`` -> ``x.png``), as
    ``CorruptedImageName`` maps them in the pipeline.
    """
    missing = []
    for i in range(len(dataset)):
        path = dataset.get_data_info(i).get('img_path')
        if path and not osp.isfile(path) and not osp.isfile(output_name(path, fmt)):
            missing.append(output_name(path, fmt))
    if missing:
        raise RobustnessError(f'{what}: {len(missing)} of {len(dataset)} images are missing, e.g. {missing[:3]}. '
                              'Was the corrupted copy made from this dataset\'s image folder?')


def evaluate_robustness(config: str, checkpoint: str, suite: str, work_dir: str,
                        corrupted_root: Optional[str] = None, on_the_fly: bool = False,
                        corruptions: Optional[Sequence[str]] = None, policy: Optional[str] = None,
                        severities: Optional[Sequence[int]] = None, seed: Optional[int] = None,
                        channel_order: Optional[str] = None, cfg_options: Optional[dict] = None,
                        launcher: str = 'none', results_name: str = RESULTS_NAME,
                        allow_partial_checkpoint: bool = False, shifts: Optional[Dict[str, str]] = None,
                        eager: bool = False) -> dict:
    """Run clean + every (corruption, severity) of the plan + every condition of the real-shift sets; return
    the results dict.

    Exactly one of ``corrupted_root`` (a folder written by ``make_corrupted_dataset``;
    its seed and channel order are used) and ``on_the_fly`` must be given. ``seed`` and
    ``channel_order`` (defaults 0 and 'rgb') apply on the fly and must match the folder
    otherwise. The checkpoint must fit the model unless ``allow_partial_checkpoint``; what was loaded
    and the check's result are recorded under ``meta.checkpoint_check``.

    ``shifts`` maps real-shift set names (:data:`fan_mm.datasets.real_shift.SHIFT_SETS`) to their data roots;
    each condition is one more run of the same built model, with the config's test pipeline and evaluator
    (for detection, pointed at the set's annotation file), stored under ``real_shift`` in the same file.
    Without a ``suite``, only the clean set and the real shifts are evaluated. ``eager``: see
    :func:`fan_mm.engine.runner.load_config`.
    """
    if suite is None and not shifts:
        raise RobustnessError('nothing to evaluate: give a corruption suite (--suite) or real-shift sets (--shifts)')
    if suite is not None and bool(corrupted_root) == bool(on_the_fly):
        raise RobustnessError('give exactly one of --corrupted-root DIR and --on-the-fly')
    if not osp.isfile(checkpoint):
        raise RobustnessError(f'checkpoint file not found: {checkpoint}')
    policy_label, plan = protocol.severity_plan(suite, corruptions, policy, severities) if suite else (None, {})

    if corrupted_root:
        manifest = load_manifest(corrupted_root)
        made = manifest['settings']
        asked_seed = None if seed is None else protocol.check_seed(seed)
        asked_order = None if channel_order is None else protocol.check_channel_order(channel_order)
        for name, asked in (('seed', asked_seed), ('channel_order', asked_order)):
            if asked is not None and asked != made[name]:
                raise RobustnessError(f'{corrupted_root} was made with {name}={made[name]!r}, not {asked!r}')
        seed, channel_order = made['seed'], made['channel_order']
        missing = [f'{c}/{s}' for c, sevs in plan.items() for s in sevs
                   if str(s) not in manifest.get('pairs', {}).get(c, {})]
        if missing:
            raise RobustnessError(
                f'{corrupted_root} lacks complete (corruption/severity) folders {missing}; run '
                'tools/make_corrupted_dataset.py with the same suite and severities to write or finish them')
        data = dict(corrupted_root=osp.abspath(corrupted_root), settings=made)
    elif on_the_fly:
        seed = protocol.check_seed(0 if seed is None else seed)
        channel_order = protocol.check_channel_order(channel_order or 'rgb')
        data = dict(on_the_fly=True)
    else:
        data = dict(clean_only=True)

    cfg = load_config(config, cfg_options, work_dir, launcher, eager)
    task = codebase_of(cfg)
    shift_meta = _check_shifts(shifts or {}, task)
    config_sha = _config_digest(cfg)
    cfg.load_from = checkpoint
    # Register CorruptImage / CorruptedImageName now (custom_imports are only read when a
    # config file is loaded) and in the config, for anyone who rebuilds it from the dump.
    from . import transforms  # noqa: F401
    add_custom_import(cfg)

    meta = dict(format=RESULTS_FORMAT, config=config, config_sha256=config_sha, checkpoint=checkpoint,
                checkpoint_sha256=_sha256_file(checkpoint), task=task, suite=suite, policy=policy_label,
                corruptions=list(plan), severities={c: list(v) for c, v in plan.items()},
                categories={cat: [c for c in names if c in plan]
                            for cat, names in (protocol.suite_categories(suite).items() if suite else ())},
                seed=seed, channel_order=channel_order,
                mode='disk' if corrupted_root else 'on-the-fly' if on_the_fly else None,
                data=data, versions=_versions(task), shifts=shift_meta)
    results_path = osp.join(cfg.work_dir, results_name)

    runner = build_runner(cfg)
    meta['checkpoint_check'] = check_checkpoint(runner.model, checkpoint, allow_partial_checkpoint)
    from mmengine.dist import broadcast_object_list, get_world_size, is_main_process

    # Rank 0 decides what is done; the others follow (they may not see the same file system).
    state = [None]
    if is_main_process():
        state[0] = _merge_existing(results_path, meta)
    broadcast_object_list(state)
    if isinstance(state[0], str):
        raise RobustnessError(state[0])
    results = state[0]
    meta['world_size'] = get_world_size()
    meta['params'] = _param_counts(runner.model)
    results['meta'] = meta
    runs = planned_runs(plan, results) + [
        ('shift', name, condition) for name, m in shift_meta.items() for condition in m['conditions']
        if condition not in results['real_shift'].get(name, {})]
    total = 1 + sum(len(v) for v in plan.values()) + sum(len(m['conditions']) for m in shift_meta.values())
    _say(f'robustness: {total - len(runs)} of {total} runs already in {results_path}; {len(runs)} to do')

    base_loader = copy.deepcopy(cfg.test_dataloader)
    config_evaluator = runner.test_loop.evaluator
    for n, run in enumerate(runs, start=1):
        if run is None:
            loader_cfg, label = base_loader, 'clean'
        elif run[0] == 'shift':
            _, name, condition = run
            label = f'{shift_meta[name]["title"]} {condition}'
            loader_cfg = _shift_loader(base_loader, name, condition, shift_meta[name]['data_root'])
        else:
            c, s = run
            label = f'{c} severity {s}'
            if corrupted_root:
                loader_cfg = use_corrupted_copy(base_loader, corrupted_root, c, s, codebase=task)
            else:
                loader_cfg = corrupt_on_the_fly(base_loader, c, s, seed=seed, channel_order=channel_order)
        loader = runner.build_dataloader(loader_cfg, seed=runner.seed)
        if corrupted_root and run is not None and run[0] != 'shift':  # shift sets are not corrupted copies
            _check_files(loader.dataset, f'{corrupted_root} ({label})', data['settings']['format'])
        runner.test_loop.dataloader = loader
        if run is not None and run[0] == 'shift':
            # the set's own annotation file (detection) and class list
            runner.test_loop.evaluator = runner.build_evaluator(
                _shift_evaluator(cfg.test_evaluator, loader_cfg['dataset'], task))
            runner.test_loop.evaluator.dataset_meta = loader.dataset.metainfo
        else:  # the clean set and its corrupted copies: the config's evaluator, whatever ran before
            runner.test_loop.evaluator = config_evaluator
        _say(f'robustness: run {n}/{len(runs)}: {label}')
        metrics = _plain(runner.test())
        images = runner.message_hub.get_info('fan_mm/images')
        if run is None and images and not runner.message_hub.get_info('fan_mm/detections'):
            raise RobustnessError(
                f'clean: the model returned no detection on any of the {images} images, so there is no clean '
                'accuracy to measure retention against. Is the checkpoint trained (did its training diverge?)')
        if not metrics:
            raise RobustnessError(f'{label}: the test evaluator returned no numeric metric')
        if run is None:
            results['clean'] = metrics
        elif run[0] == 'shift':
            results['real_shift'].setdefault(run[1], {})[run[2]] = metrics
        else:
            results['corrupted'].setdefault(run[0], {})[str(run[1])] = metrics
        if is_main_process():
            _write_results(results_path, _ordered(results, plan))
    if is_main_process() and not runs:
        _write_results(results_path, _ordered(results, plan))
    return _ordered(results, plan)


def _check_shifts(shifts: Dict[str, str], task: str) -> Dict[str, dict]:
    """Meta of each asked real-shift set, after checking that it suits the model and is laid out completely."""
    from fan_mm.datasets.real_shift import check_shift_set, get_shift_set
    meta = {}
    for name, root in shifts.items():
        try:
            shift = get_shift_set(name)
        except ValueError as e:
            raise RobustnessError(str(e)) from None
        wanted = 'seg' if task == 'mmseg' else 'det'
        if shift.task != wanted:
            raise RobustnessError(f'{name} is a {"segmentation" if shift.task == "seg" else "detection"} set; '
                                  f'this is an {task} model')
        report = check_shift_set(name, root, check_labels=False)
        problems = [f'{c}: {p}' for c, r in report.items() for p in r['problems']]
        if problems:
            raise RobustnessError(f'{shift.title} under {root} is incomplete: ' + '; '.join(problems[:6]) +
                                  f' (tools/check_real_shift.py {name} {root} lists everything)')
        meta[name] = dict(title=shift.title, data_root=osp.abspath(root), conditions=list(shift.conditions),
                          condition_labels={c: shift.condition_label(c) for c in shift.conditions})
    return meta


def _shift_loader(base_loader, name: str, condition: str, data_root: str):
    from fan_mm.datasets.real_shift import shift_dataset_config
    from . import transforms  # noqa: F401
    import fan_mm.datasets.real_shift_datasets  # noqa: F401  (registers the dataset classes)
    loader = copy.deepcopy(base_loader)
    pipeline = loader['dataset'].get('pipeline')
    if pipeline is None:
        raise RobustnessError(f'{name}: the test dataloader\'s dataset has no pipeline to reuse')
    loader['dataset'] = shift_dataset_config(name, condition, data_root, pipeline)
    return loader


def _shift_evaluator(evaluator, dataset_cfg: dict, task: str):
    evaluator = copy.deepcopy(evaluator)
    if task == 'mmdet':
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        for m in metrics:
            if 'ann_file' in m:
                m['ann_file'] = osp.join(dataset_cfg['data_root'], dataset_cfg['ann_file'])
    return evaluator


def _say(message: str) -> None:
    """Progress on the main process's stdout, whatever the config's log level."""
    from mmengine.dist import is_main_process
    if is_main_process():
        print(message, flush=True)


def _ordered(results: dict, plan: Dict[str, List[int]]) -> dict:
    """Corruptions in protocol order, severities ascending (extra entries from earlier runs kept)."""
    corrupted_ = results.get('corrupted', {})
    names = list(plan) + [c for c in corrupted_ if c not in plan]
    ordered = {c: {s: corrupted_[c][s] for s in sorted(corrupted_[c], key=int)} for c in names if c in corrupted_}
    out = dict(clean=results.get('clean', {}), corrupted=ordered, meta=results['meta'])
    shifts = results.get('real_shift') or {}
    if shifts:
        from fan_mm.datasets.real_shift import SHIFT_SETS
        out['real_shift'] = {
            name: {c: shifts[name][c] for c in (list(SHIFT_SETS[name].conditions) if name in SHIFT_SETS else [])
                   + sorted(shifts[name]) if c in shifts[name]}
            for name in shifts}
    return out


def _merge_existing(path: str, meta: dict):
    """Existing results compatible with ``meta``, an empty skeleton, or an error message."""
    if not osp.exists(path):
        return dict(clean={}, corrupted={}, real_shift={}, meta=meta)
    try:
        existing = load_results(path)
    except RobustnessError as e:
        return f'{e}; move it away or choose another --work-dir'
    old = existing.get('meta', {})
    # a call without a suite (real shifts only) continues a file with one, and the other way round: the
    # corruption protocol is compared only when both have it
    if meta['suite'] is None and old.get('suite') is not None:
        for key in ('suite', 'policy', 'corruptions', 'severities', 'categories', 'seed', 'channel_order', 'mode',
                    'data'):
            meta[key] = old.get(key)
    keys = _IDENTITY_KEYS if old.get('suite') is not None else ('task', 'config_sha256', 'checkpoint_sha256')
    differ = [k for k in keys if old.get(k) != meta.get(k)]
    if old.get('suite') not in (None, meta['suite']):
        differ.append('suite')
    for name, m in (meta.get('shifts') or {}).items():
        before = (old.get('shifts') or {}).get(name)
        if before and before['data_root'] != m['data_root'] and existing.get('real_shift', {}).get(name):
            differ.append(f'shifts.{name}.data_root')
    if differ:
        return (f'{path} holds results of another evaluation (differs in {differ}: '
                f'{ {k: (old.get(k), meta.get(k)) for k in differ} }); choose another --work-dir or remove it')
    logging.getLogger(__name__).info('continuing %s', path)
    # a later call may add real-shift sets to the same model's file: keep the ones it had
    meta['shifts'] = {**(old.get('shifts') or {}), **(meta.get('shifts') or {})}
    return dict(clean=existing.get('clean', {}), corrupted=existing.get('corrupted', {}),
                real_shift=existing.get('real_shift', {}), meta=meta)
