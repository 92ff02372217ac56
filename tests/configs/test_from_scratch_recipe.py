"""The toy Mask R-CNN recipe trains FAN-Hybrid from scratch: its loss falls on the CPU.

FAN-Hybrid from scratch without its output norms (``out_norm=False``) diverges under the toy
recipe: the FPN outputs grow, the RoI classifier's loss climbs with the gradient norm
(docs/from_scratch.md). At a stress learning rate, 5x the demo's, that happens within 30
iterations, so a short run tells the two apart: with the config's ``out_norm=True`` the loss of
the last 10 iterations is well below that of the first 10; with ``out_norm=False`` it rises
(mean 6.2 over the first 10 iterations, 20.6 over the last 10) and this test fails.
"""
import os.path as osp

import pytest

pytest.importorskip('mmdet.models')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'toy', 'maskrcnn_fan_t_hybrid_toy_coco.py')
ITERS = 30
STRESS_LR = 1e-3


def train_losses(data_root: str, work_dir: str, **backbone) -> list:
    """The total loss of each of ``ITERS`` training iterations of the toy config (no validation)."""
    from mmengine.config import Config
    from mmengine.hooks import Hook

    from fan_mm.engine.runner import build_runner

    class LossRecorder(Hook):
        def __init__(self):
            self.losses = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append(outputs['loss'].item())

    cfg = Config.fromfile(CONFIG)
    root = data_root.rstrip('/') + '/'
    cfg.merge_from_dict({
        'work_dir': work_dir,
        'model.backbone': backbone,
        'train_dataloader.dataset.data_root': root,
        'train_cfg.max_iters': ITERS,
        'train_cfg.val_interval': ITERS + 1,
        'optim_wrapper.optimizer.lr': STRESS_LR,
        'default_hooks.checkpoint.interval': ITERS + 1,
        'default_hooks.logger.interval': ITERS,
        'randomness.seed': 0,
        'log_level': 'WARNING',
    })
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=5)]
    runner = build_runner(cfg)
    recorder = LossRecorder()
    runner.register_hook(recorder, priority='LOWEST')
    runner.train()
    return recorder.losses


def test_fan_hybrid_toy_recipe_loss_falls_from_scratch(tmp_path):
    from fan_mm.datasets import make_toy_dataset
    data = make_toy_dataset('coco', str(tmp_path / 'coco'), num_train=8, num_val=1).root
    losses = train_losses(data, str(tmp_path / 'work'))
    assert len(losses) == ITERS
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.8 * first, f'loss did not fall: first 10 iterations {first:.3f}, last 10 {last:.3f}; {losses}'
