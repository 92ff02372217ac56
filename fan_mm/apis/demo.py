"""The built-in default job: train, test clean, test corrupted, print the metrics.

It makes fan_mm's toy COCO-format dataset, trains the FAN-T-Hybrid Mask R-CNN of
``configs/toy/maskrcnn_fan_t_hybrid_toy_coco.py`` for a few iterations on the CPU, then
evaluates the last checkpoint clean and under one corruption (on the fly, seeded per image)
with one built model, and prints bbox / segm mAP and their retention. A few minutes on
2 CPU cores; rerunning reuses the dataset, and ``--resume`` continues an interrupted
training run.
"""
import os.path as osp
from typing import Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'toy', 'maskrcnn_fan_t_hybrid_toy_coco.py')
REPORTED = ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50')


def _data_root_options(data_root: str) -> dict:
    root = data_root.rstrip('/') + '/'
    return {
        'train_dataloader.dataset.data_root': root,
        'val_dataloader.dataset.data_root': root,
        'test_dataloader.dataset.data_root': root,
        'val_evaluator.ann_file': root + 'annotations/instances_val.json',
        'test_evaluator.ann_file': root + 'annotations/instances_val.json',
    }


def format_results(results: dict, corruption: str, severity: int) -> str:
    """The demo's closing table: clean, corrupted and retention for each metric."""
    clean = results['clean']
    corrupted = results['corrupted'][corruption][str(severity)]
    lines = [f'{"metric":<18}{"clean":>8}{corruption + " s" + str(severity):>22}{"retention":>11}']
    for key in REPORTED:
        if key not in clean:
            continue
        c, k = clean[key], corrupted[key]
        retention = f'{k / c:10.1%}' if c > 0 else '       n/a'
        lines.append(f'{key:<18}{c:8.3f}{k:22.3f} {retention}')
    return '\n'.join(lines)


def run_demo(work_dir: str = 'work_dirs/demo', data_root: str = 'data/toy_coco',
             config: str = DEFAULT_CONFIG, corruption: str = 'gaussian_noise',
             severity: int = 3, max_iters: Optional[int] = None, seed: int = 0,
             resume: bool = False) -> dict:
    """Run the demo; returns the robustness results dict (see fan_mm.evaluation)."""
    from fan_mm.datasets.toy import make_toy_dataset
    from fan_mm.evaluation.robustness import evaluate_robustness

    from .runner import train

    made = make_toy_dataset('coco', data_root)
    print(f'[demo] toy dataset at {made.root} ({"made" if made.created else "reused"})')
    options = _data_root_options(data_root)
    options['randomness'] = dict(seed=seed, deterministic=False)
    if max_iters is not None:
        options.update({'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': max_iters})
    train_dir = osp.join(work_dir, 'train')
    print(f'[demo] training {osp.basename(config)} in {train_dir}')
    train(config, work_dir=train_dir, cfg_options=options, resume='auto' if resume else None)
    with open(osp.join(train_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    print(f'[demo] evaluating {checkpoint} clean and under {corruption} severity {severity}')
    results = evaluate_robustness(
        config, checkpoint, suite='coco-c', work_dir=osp.join(work_dir, 'robustness'),
        on_the_fly=True, corruptions=[corruption], severities=[severity], seed=seed,
        cfg_options={k: v for k, v in options.items() if not k.startswith('train_cfg')})
    print('\n' + format_results(results, corruption, severity))
    return results
