"""Train toy configs from scratch side by side and compare them: FAN beside a ResNet-50 control.

The FAN backbones are meant to be fine-tuned from ImageNet checkpoints, but every run that can be
made without downloads (the demo, the tests, a new user's first try) starts from scratch. This
module answers "does this recipe train?" the way a reviewer would: it trains each config with
``tools/train.py`` in its own process, on the same generated dataset, batch, schedule and
optimiser, next to mmdet's / mmseg's ResNet-50 from scratch, and prints the final metric, the
loss and the gradient norm of each, plus whether a run went non-finite.

Each run gets a small config file in its work dir that inherits the toy config and sets the data
root, batch size, iterations and learning rate (and any variant settings), so what ran is on disk
and can be rerun with ``tools/train.py`` alone. ``tools/analysis/train_from_scratch.py`` is the
command line.
"""
import json
import math
import os
import os.path as osp
import pprint
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIGS = osp.join(REPO, 'configs', 'toy')

# task -> (dataset kind, the metric that decides, runs: name -> config)
TASKS = {
    'det': ('coco', 'coco/bbox_mAP', {
        'fan_t_hybrid_maskrcnn': 'maskrcnn_fan_t_hybrid_toy_coco.py',
        'r50_maskrcnn (control)': 'maskrcnn_r50_toy_coco.py',
    }),
    'seg': ('cityscapes', 'mIoU', {
        'fan_t_hybrid_segformer': 'segformer_fan_t_hybrid_toy_cityscapes.py',
        'fan_t_hybrid_upernet': 'upernet_fan_t_hybrid_toy_cityscapes.py',
        'fan_t_vit_setr_pup': 'setr_pup_fan_t_vit_toy_cityscapes.py',
        'r50_upernet (control)': 'upernet_r50_toy_cityscapes.py',
    }),
}
CONTROL_SUFFIX = '(control)'


@dataclass
class Run:
    """One training run: a config and the settings it gets on top of the shared ones."""
    name: str
    config: str
    overrides: dict = field(default_factory=dict)


def _nest(dotted: dict) -> dict:
    """{'a.b': 1, 'a.c': 2} -> {'a': {'b': 1, 'c': 2}} (config-file form of --cfg-options keys)."""
    out: dict = {}
    for key, value in dotted.items():
        parts = key.split('.')
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def shared_overrides(task: str, data_root: str, batch_size: int, iters: int, lr: Optional[float],
                     workers: int) -> dict:
    """The settings every run of a comparison shares: data, batch, schedule length, lr."""
    kind = TASKS[task][0]
    root = osp.abspath(data_root).rstrip('/') + '/'
    opts = {
        'train_dataloader.batch_size': batch_size,
        'train_dataloader.num_workers': workers,
        'train_dataloader.persistent_workers': workers > 0,
        'val_dataloader.num_workers': workers,
        'val_dataloader.persistent_workers': workers > 0,
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.logger.interval': 10,
        'auto_scale_lr.base_batch_size': batch_size,
    }
    if kind == 'coco':
        opts['val_evaluator.ann_file'] = root + 'annotations/instances_val.json'
        opts['test_evaluator.ann_file'] = root + 'annotations/instances_val.json'
    if lr is not None:
        opts['optim_wrapper.optimizer.lr'] = lr
    return opts


def stretched_schedule(param_scheduler: Sequence[dict], base_iters: int, iters: int) -> List[dict]:
    """The config's lr schedule stretched from ``base_iters`` to ``iters`` iterations.

    Warm-up length, milestones and the end of a decay scale with the run, so that a 600-iteration
    comparison of a 200-iteration toy recipe keeps the recipe's shape instead of spending 400
    iterations at the last, decayed lr (or at lr 0 after a poly decay)."""
    factor = iters / base_iters
    stretched = []
    for scheduler in param_scheduler:
        scheduler = dict(scheduler)
        for key in ('begin', 'end'):
            if key in scheduler and scheduler[key] is not None:
                scheduler[key] = int(round(scheduler[key] * factor))
        if 'milestones' in scheduler:
            scheduler['milestones'] = [int(round(m * factor)) for m in scheduler['milestones']]
        stretched.append(scheduler)
    return stretched


def write_run_config(run: Run, shared: dict, path: str) -> str:
    """A config file that inherits ``run.config`` and sets the shared and the run's own settings.

    The config's own lr schedule is stretched to the shared ``train_cfg.max_iters``
    (:func:`stretched_schedule`) unless the run sets ``param_scheduler`` itself."""
    from mmengine.config import Config
    base = run.config if osp.isabs(run.config) else osp.join(TOY_CONFIGS, run.config)
    dotted = {**shared, **run.overrides}
    iters = dotted.get('train_cfg.max_iters')
    if iters is not None and 'param_scheduler' not in dotted:
        cfg = Config.fromfile(base)
        schedule = cfg.get('param_scheduler')
        base_iters = cfg.get('train_cfg', {}).get('max_iters')
        if schedule and base_iters:
            schedule = schedule if isinstance(schedule, (list, tuple)) else [schedule]
            dotted['param_scheduler'] = stretched_schedule([dict(s) for s in schedule], base_iters, iters)
    settings = _nest(dotted)
    lines = [f'# {run.name}: written by fan_mm.from_scratch', f'_base_ = [{base!r}]']
    for key, value in settings.items():
        lines.append(f'{key} = {pprint.pformat(value, width=100, sort_dicts=True)}')
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.partial'
    with open(tmp, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.replace(tmp, path)
    return path


def _latest_scalars(work_dir: str) -> Optional[str]:
    """The ``vis_data/scalars.json`` of the newest timestamped run folder in ``work_dir``."""
    stamps = sorted(d for d in os.listdir(work_dir)
                    if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json')))
    return osp.join(work_dir, stamps[-1], 'vis_data', 'scalars.json') if stamps else None


def read_run(work_dir: str, metric: str) -> dict:
    """Loss, grad norm and final metric of a finished (or failed) run, from mmengine's scalars.json."""
    path = _latest_scalars(work_dir) if osp.isdir(work_dir) else None
    train, val = [], {}
    if path:
        with open(path) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if 'loss' in row:
                    train.append(row)
                elif metric in row:
                    val = row
    losses = [r['loss'] for r in train]
    norms = [r['grad_norm'] for r in train if 'grad_norm' in r]
    finite = [v for v in losses if math.isfinite(v)]
    tail = losses[-5:]
    return dict(
        iters=train[-1]['step'] if train else 0,
        first_loss=losses[0] if losses else None,
        last_loss=sum(tail) / len(tail) if tail and all(math.isfinite(v) for v in tail) else
        (float('nan') if tail else None),
        min_loss=min(finite) if finite else None,
        max_grad_norm=max((v for v in norms if math.isfinite(v)), default=None),
        non_finite_loss=len(finite) < len(losses),
        metric=val.get(metric),
        metrics={k: v for k, v in val.items() if isinstance(v, (int, float)) and k != 'step'},
    )


def run_all(runs: Sequence[Run], task: str, work_dir: str, shared: dict, amp: bool = False,
            parallel: int = 1, threads_per_run: Optional[int] = None, timeout: float = 3600) -> Dict[str, dict]:
    """Train every run (``parallel`` at a time) with ``tools/train.py``; returns name -> summary."""
    metric = TASKS[task][1]
    pending = list(runs)
    active: List[tuple] = []
    results: Dict[str, dict] = {}
    cpus = os.cpu_count() or 1
    threads = threads_per_run or max(1, cpus // max(1, min(parallel, len(runs))))
    threads = int(os.environ.get('FAN_MM_THREADS_PER_RUN', threads))

    def start(run: Run):
        slug = ''.join(c if c.isalnum() else '_' for c in run.name).strip('_')
        run_dir = osp.join(work_dir, slug)
        cfg = write_run_config(run, shared, osp.join(run_dir, 'config.py'))
        cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg, '--work-dir', run_dir]
        if amp:
            cmd.append('--amp')
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
        log = open(osp.join(run_dir, 'train.out'), 'w')
        print(f'[from_scratch] start {run.name}: {" ".join(cmd)}', flush=True)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return proc, log, run, run_dir, time.time()

    while pending or active:
        while pending and len(active) < parallel:
            active.append(start(pending.pop(0)))
        time.sleep(2)
        for item in list(active):
            proc, log, run, run_dir, t0 = item
            if proc.poll() is None and time.time() - t0 < timeout:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
            active.remove(item)
            summary = read_run(run_dir, metric)
            summary.update(name=run.name, config=run.config, overrides=run.overrides,
                           returncode=proc.returncode, seconds=round(time.time() - t0, 1),
                           work_dir=run_dir)
            results[run.name] = summary
            print(f'[from_scratch] done  {run.name}: exit {proc.returncode}, {metric} '
                  f'{summary["metric"]}, {summary["seconds"]:.0f} s', flush=True)
    return {r.name: results[r.name] for r in runs}


def _fmt(value, spec='.3f'):
    if value is None:
        return '-'
    return format(value, spec) if isinstance(value, float) and math.isfinite(value) else str(value)


def format_table(results: Dict[str, dict], task: str) -> str:
    """One row per run: final metric, loss first/last, max grad norm, non-finite loss, exit code."""
    metric = TASKS[task][1]
    head = f'{"run":<34}{metric:>14}{"loss first":>12}{"loss last":>11}{"max |g|":>10}{"non-finite":>12}{"exit":>6}'
    lines = [head, '-' * len(head)]
    for name, r in results.items():
        lines.append(f'{name:<34}{_fmt(r["metric"]):>14}{_fmt(r["first_loss"]):>12}{_fmt(r["last_loss"]):>11}'
                     f'{_fmt(r["max_grad_norm"], ".1f"):>10}{str(r["non_finite_loss"]):>12}{r["returncode"]:>6}')
    controls = [r['metric'] for n, r in results.items() if n.endswith(CONTROL_SUFFIX) and r['metric'] is not None]
    if controls:
        ref = max(controls)
        lines.append('')
        for name, r in results.items():
            if not name.endswith(CONTROL_SUFFIX) and r['metric'] is not None and ref > 0:
                lines.append(f'{name}: {r["metric"] / ref:.1%} of the control\'s {metric}')
    return '\n'.join(lines)


def default_runs(task: str, only: Optional[Sequence[str]] = None, overrides: Optional[dict] = None) -> List[Run]:
    """The task's FAN toy configs and its control; ``overrides`` apply to the FAN runs only."""
    runs = []
    for name, config in TASKS[task][2].items():
        if only and not any(o in name for o in only):
            continue
        extra = {} if name.endswith(CONTROL_SUFFIX) else dict(overrides or {})
        runs.append(Run(name, config, extra))
    if not runs:
        raise ValueError(f'--only {list(only or [])} matches none of {list(TASKS[task][2])}')
    return runs


def compare_from_scratch(task: str, work_dir: str, data_root: Optional[str] = None, num_train: int = 400,
                         num_val: int = 100, batch_size: int = 8, iters: int = 600, lr: Optional[float] = None,
                         amp: bool = False, parallel: int = 1, workers: int = 2,
                         runs: Optional[Sequence[Run]] = None) -> Dict[str, dict]:
    """Make the dataset, train every run, write ``summary.json`` and print the table."""
    from ..datasets.toy import make_toy_dataset
    if task not in TASKS:
        raise ValueError(f'task {task!r}: choose one of {sorted(TASKS)}')
    kind = TASKS[task][0]
    data_root = data_root or osp.join(work_dir, f'data_{kind}_{num_train}_{num_val}')
    made = make_toy_dataset(kind, data_root, num_train=num_train, num_val=num_val)
    print(f'[from_scratch] toy {kind} dataset at {made.root} ({num_train} train / {num_val} val, '
          f'{"made" if made.created else "reused"})', flush=True)
    shared = shared_overrides(task, data_root, batch_size, iters, lr, workers)
    runs = list(runs) if runs is not None else default_runs(task)
    results = run_all(runs, task, work_dir, shared, amp=amp, parallel=parallel)
    summary = dict(task=task, amp=amp, batch_size=batch_size, iters=iters, lr=lr, num_train=num_train,
                   num_val=num_val, runs=results, environment=_environment())
    path = osp.join(work_dir, 'summary.json')
    with open(path + '.partial', 'w') as f:
        json.dump(summary, f, indent=1, default=str)
    os.replace(path + '.partial', path)
    print('\n' + format_table(results, task))
    print(f'\n[from_scratch] summary: {path}')
    return results


def _environment() -> dict:
    import torch

    from ..utils.environment import collect_environment
    return collect_environment(device='cuda' if torch.cuda.is_available() else 'cpu')
