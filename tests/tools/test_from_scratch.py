"""The from-scratch comparison's plumbing: run configs, reading mmengine's scalars, the table."""
import json
import math

import pytest

pytest.importorskip('mmdet.models')

from fan_mm.from_scratch import (Run, default_runs, format_table, read_run,  # noqa: E402
                                      shared_overrides, stretched_schedule, write_run_config)


def test_run_config_inherits_the_toy_config_and_applies_every_setting(tmp_path):
    from mmengine.config import Config
    shared = shared_overrides('det', str(tmp_path / 'coco'), batch_size=8, iters=600, lr=3e-4, workers=2)
    run = Run('fan', 'maskrcnn_fan_t_hybrid_toy_coco.py',
              {'model.backbone.out_norm': False, 'optim_wrapper.paramwise_cfg.custom_keys': {'backbone': {'lr_mult': 0.1}}})
    cfg = Config.fromfile(write_run_config(run, shared, str(tmp_path / 'fan' / 'config.py')))
    assert cfg.model.backbone.type == 'FANHybrid' and cfg.model.backbone.out_norm is False
    assert cfg.model.backbone.arch == 'tiny'  # the toy config's own settings are kept
    assert cfg.train_dataloader.batch_size == 8 and cfg.train_cfg.max_iters == 600 == cfg.train_cfg.val_interval
    assert cfg.optim_wrapper.optimizer.lr == 3e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'backbone': {'lr_mult': 0.1}}
    assert cfg.val_evaluator.ann_file == str(tmp_path / 'coco') + '/annotations/instances_val.json'
    assert not list(tmp_path.rglob('*.partial'))
    # the toy recipe's 200-iteration schedule is stretched to 600: warm-up 20 -> 60, lr drop 170 -> 510
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 60)
    assert (steps.type, steps.end, steps.milestones) == ('MultiStepLR', 600, [510])


def test_a_run_that_sets_its_own_schedule_keeps_it(tmp_path):
    from mmengine.config import Config
    shared = shared_overrides('seg', str(tmp_path / 'city'), batch_size=8, iters=600, lr=None, workers=0)
    own = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=600)]
    cfg = Config.fromfile(write_run_config(Run('u', 'upernet_fan_t_hybrid_toy_cityscapes.py', {'param_scheduler': own}),
                                           shared, str(tmp_path / 'u' / 'config.py')))
    assert [dict(s) for s in cfg.param_scheduler] == own


def test_stretched_schedule_scales_warm_up_decay_and_milestones():
    poly = [dict(type='LinearLR', begin=0, end=10), dict(type='PolyLR', begin=10, end=120, by_epoch=False)]
    assert stretched_schedule(poly, 120, 600) == [dict(type='LinearLR', begin=0, end=50),
                                                  dict(type='PolyLR', begin=50, end=600, by_epoch=False)]
    assert stretched_schedule([dict(type='MultiStepLR', milestones=[170, 190], end=200)], 200, 100) == [
        dict(type='MultiStepLR', milestones=[85, 95], end=100)]


def _scalars(tmp_path, rows):
    folder = tmp_path / 'run' / '20261203_000000' / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in rows) + '\n{"cut sh')
    return tmp_path / 'run'


def test_read_run_summarises_loss_grad_norm_and_metric(tmp_path):
    rows = [dict(step=10 * i, loss=3.0 - 0.2 * i, grad_norm=10.0 + i) for i in range(1, 11)]
    rows.append({'coco/bbox_mAP': 0.42, 'coco/bbox_mAP_50': 0.8, 'step': 100})
    r = read_run(str(_scalars(tmp_path, rows)), 'coco/bbox_mAP')
    assert r['iters'] == 100 and r['metric'] == 0.42 and r['metrics']['coco/bbox_mAP_50'] == 0.8
    assert r['first_loss'] == 2.8 and r['max_grad_norm'] == 20.0 and not r['non_finite_loss']
    assert abs(r['last_loss'] - sum(3.0 - 0.2 * i for i in range(6, 11)) / 5) < 1e-9


def test_read_run_flags_a_non_finite_loss(tmp_path):
    rows = [dict(step=10, loss=2.0, grad_norm=5.0), dict(step=20, loss=float('nan'), grad_norm=float('nan'))]
    r = read_run(str(_scalars(tmp_path, rows)), 'mIoU')
    assert r['non_finite_loss'] and math.isnan(r['last_loss']) and r['metric'] is None and r['max_grad_norm'] == 5.0


def test_table_gives_each_run_its_share_of_the_control():
    base = dict(first_loss=3.0, last_loss=0.5, max_grad_norm=9.0, non_finite_loss=False, returncode=0)
    table = format_table({'fan': dict(base, metric=0.8), 'r50 (control)': dict(base, metric=0.9)}, 'det')
    assert 'fan: 88.9% of the control' in table


def test_default_runs_pair_fan_with_the_control_and_refuse_unknown_names():
    runs = default_runs('det', overrides={'model.backbone.out_norm': False})
    assert [r.overrides for r in runs] == [{'model.backbone.out_norm': False}, {}]  # never the control
    with pytest.raises(ValueError, match='matches none'):
        default_runs('seg', only=['nothing'])
