"""The built-in default job: train, test clean, test corrupted, print the metrics.

It makes fan_mm's toy COCO-format dataset, trains the FAN-T-Hybrid Mask R-CNN of
``configs/toy/maskrcnn_fan_t_hybrid_toy_coco.py`` from scratch on the CPU, then evaluates the
last checkpoint clean and under one corruption (on the fly, seeded per image) with one built
model, writes the robustness report and prints bbox / segm mAP with their retention.

The console shows progress bars and the final table; everything mmengine and pycocotools print
(config dump, per-iteration log lines, COCO summaries) goes to ``<work_dir>/demo.log``. A rerun
reuses the dataset, and ``resume=True`` continues an interrupted training run.
"""
import contextlib
import os
import os.path as osp
import sys
import time
from typing import Optional

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'toy', 'maskrcnn_fan_t_hybrid_toy_coco.py')
REPORTED = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')
# The demo's dataset and schedule (the config's model; lr 2e-4, which the out_norm recipe trains at on
# the CPU while the recipe without it diverges): more val images than the test datasets so that val mAP
# is measured on ~100 objects.
DEMO_DATASET = dict(num_train=120, num_val=40)
DEMO_SCHEDULE = dict(iters=250, batch_size=2, lr=2e-4)


def _data_root_options(data_root: str) -> dict:
    root = data_root.rstrip('/') + '/'
    return {
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': root + 'annotations/instances_val.json',
        'test_evaluator.ann_file': root + 'annotations/instances_val.json',
    }


def schedule_options(iters: int, batch_size: int) -> dict:
    """Train for ``iters`` iterations of ``batch_size`` images; the lr drops 10x for the last 15%."""
    return {
        'train_cfg.max_iters': iters,
        'train_cfg.val_interval': iters,
        'train_dataloader.batch_size': batch_size,
        'optim_wrapper.optimizer.lr': DEMO_SCHEDULE['lr'],
        'default_hooks.checkpoint.interval': iters,
        'default_hooks.checkpoint.max_keep_ckpts': 1,
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=min(50, iters)),
            dict(type='MultiStepLR', by_epoch=False, begin=0, end=iters, milestones=[int(iters * 0.85)],
                 gamma=0.1)],
    }


def format_results(results: dict, corruption: str, severity: int) -> str:
    """The demo's closing table: clean, corrupted and retention for each metric."""
    clean = results['clean']
    corrupted = results['corrupted'][corruption][str(severity)]
    lines = [f'{"metric":<18}{"clean":>8}{corruption + " s" + str(severity):>22}{"retention":>11}']
    unhurt = []
    for key in REPORTED:
        if key not in clean:
            continue
        c, k = clean[key], corrupted[key]
        retention = f'{k / c:10.1%}' if c > 0 else '       n/a'
        lines.append(f'{key:<18}{c:8.3f}{k:22.3f} {retention}')
        if c > 0 and k >= c:
            unhurt.append(key)
    if unhurt:
        # on the toy val set (~100 objects) mAP@0.5 is near 1.0 clean; a corruption that costs
        # nothing measurable there reads 100% or a little more, which is noise, not robustness
        lines.append(f'note: {", ".join(unhurt)} not measurably hurt; on a val set this small a retention '
                     'of 100% or more is noise')
    return '\n'.join(lines)


@contextlib.contextmanager
def _console_to(log_path: str):
    """Send stdout (mmengine's console logger, pycocotools' prints) and Python warnings to ``log_path``.

    Progress bars and the demo's own lines go to the original streams (``sys.__stderr__`` /
    ``sys.__stdout__``)."""
    import logging
    import warnings
    with open(log_path, 'a') as log, contextlib.redirect_stdout(log):
        handler = logging.StreamHandler(log)
        logging.getLogger('py.warnings').addHandler(handler)
        logging.captureWarnings(True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('default')
                yield log
        finally:
            logging.captureWarnings(False)
            logging.getLogger('py.warnings').removeHandler(handler)


def _say(message: str = '') -> None:
    print(message, file=sys.__stdout__, flush=True)


def run_demo(work_dir: str = 'work_dirs/demo', data_root: str = 'data/toy_coco_demo',
             config: str = DEFAULT_CONFIG, corruption: str = 'gaussian_noise', severity: int = 5,
             max_iters: Optional[int] = None, batch_size: Optional[int] = None, seed: int = 0,
             resume: bool = False, quiet: bool = True, num_train: int = DEMO_DATASET['num_train'],
             num_val: int = DEMO_DATASET['num_val']) -> dict:
    """Run the demo; returns the robustness results dict (see fan_mm.robustness.evaluation)."""
    from fan_mm.robustness.protocol import check_corruption, check_severity
    from fan_mm.datasets.toy import make_toy_dataset
    from fan_mm.engine.runner import train
    from fan_mm.robustness.evaluation import RESULTS_NAME, evaluate_robustness
    from fan_mm.robustness.report import write_report

    check_corruption(corruption)
    severity = check_severity(severity)
    iters = max_iters or DEMO_SCHEDULE['iters']
    batch = batch_size or DEMO_SCHEDULE['batch_size']
    os.makedirs(work_dir, exist_ok=True)
    log_path = osp.join(work_dir, 'demo.log')
    start = time.time()
    _say(f'fan_mm demo: {osp.basename(config)} trained from scratch on a generated COCO-format dataset, '
         f'then tested clean and under {corruption} (severity {severity}). Full log: {log_path}')
    made = make_toy_dataset('coco', data_root, num_train=num_train, num_val=num_val)
    _say(f'[1/4] dataset {made.root}: {num_train} train / {num_val} val images '
         f'({"made" if made.created else "reused"})')
    options = _data_root_options(data_root)
    options['randomness'] = dict(seed=seed, deterministic=False)
    progress = dict(type='ProgressBarHook', desc='      ')
    train_dir = osp.join(work_dir, 'train')
    _say(f'[2/4] training {iters} iterations of {batch} images in {train_dir}')
    def console():  # a fresh context each time (a generator context manager is single-use)
        return _console_to(log_path) if quiet else contextlib.nullcontext()

    with console():
        train(config, work_dir=train_dir, resume='auto' if resume else None,
              cfg_options={**options, **schedule_options(iters, batch), 'custom_hooks': [progress]})
    with open(osp.join(train_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    _say(f'[3/4] testing {checkpoint} clean and under {corruption} severity {severity}')
    robustness_dir = osp.join(work_dir, 'robustness')
    with console():
        results = evaluate_robustness(
            config, checkpoint, suite='coco-c', work_dir=robustness_dir,
            on_the_fly=True, corruptions=[corruption], severities=[severity], seed=seed,
            cfg_options={**options, 'custom_hooks': [progress]})
    report_dir = osp.join(work_dir, 'report')
    written = write_report([osp.join(robustness_dir, RESULTS_NAME)], report_dir, names=['FAN-T-Hybrid (toy)'],
                           corruptions=[corruption], severities=[severity])
    _say(f'[4/4] report written to {report_dir} ({sum(len(v) for v in written.values())} files)')
    _say('\n' + format_results(results, corruption, severity) + '\n')
    _say(f'training log and checkpoint: {train_dir} ({osp.basename(checkpoint)})')
    _say(f'robustness results:          {osp.join(robustness_dir, RESULTS_NAME)}')
    _say(f'report (tables, plots):      {report_dir}')
    _say(f'console log:                 {log_path}')
    _say(f'done in {(time.time() - start) / 60:.1f} min')
    return results
