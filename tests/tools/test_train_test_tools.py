"""Real tools/train.py and tools/test.py runs on the generated toy datasets (CPU).

Each run is a subprocess started the way a user starts it, in a scratch folder holding
``data/toy_coco`` / ``data/toy_cityscapes`` so the configs' relative data roots resolve.
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DET_CONFIG = osp.join(ROOT, 'configs', 'toy', 'maskrcnn_fan_t_hybrid_toy_coco.py')
SEG_CONFIG = osp.join(ROOT, 'configs', 'toy', 'segformer_fan_t_hybrid_toy_cityscapes.py')


def run_tool(tool, *args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool), *args], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    from fan_mm.datasets import make_toy_dataset
    root = tmp_path_factory.mktemp('toy')
    make_toy_dataset('coco', str(root / 'data' / 'toy_coco'), num_train=8, num_val=4)
    make_toy_dataset('cityscapes', str(root / 'data' / 'toy_cityscapes'), num_train=8,
                     num_val=4)
    return root


@pytest.fixture(scope='module')
def det_run(toy_root):
    """6 iterations with a checkpoint every 3, then a resume from iteration 3 to 9."""
    work = toy_root / 'work_det'
    common = ['--work-dir', str(work), '--cfg-options', 'default_hooks.checkpoint.interval=3',
              'default_hooks.checkpoint.max_keep_ckpts=5', 'default_hooks.logger.interval=1',
              'randomness.seed=0']
    first = run_tool('train.py', DET_CONFIG, *common, 'train_cfg.max_iters=6',
                     'train_cfg.val_interval=100', cwd=toy_root)
    resumed = run_tool('train.py', DET_CONFIG, '--resume', str(work / 'iter_3.pth'), *common,
                       'train_cfg.max_iters=9', 'train_cfg.val_interval=100', cwd=toy_root)
    return work, first, resumed


def test_train_writes_checkpoints(det_run):
    work, first, _ = det_run
    assert (work / 'iter_3.pth').is_file() and (work / 'iter_6.pth').is_file()
    ckpt = torch.load(work / 'iter_6.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 6
    assert any(k.startswith('backbone.trunk.blocks.') for k in ckpt['state_dict'])
    assert 'optimizer' in ckpt and 'message_hub' in ckpt  # a full training checkpoint


def test_resume_continues_from_the_checkpoint(det_run):
    work, _, resumed = det_run
    # mmengine only loads optimizer / scheduler / message hub state (numpy scalars,
    # HistoryBuffer) when the torch>=2.6 weights_only default is handled
    assert 'resumed epoch: 0, iter: 3' in resumed
    assert 'Iter(train) [ 4/9]' in resumed or 'Iter(train) [4/9]' in resumed
    assert 'Iter(train) [ 1/9]' not in resumed
    ckpt = torch.load(work / 'iter_9.pth', map_location='cpu', weights_only=False)
    assert ckpt['meta']['iter'] == 9


def test_checkpoint_from_before_the_class_token_pruning(det_run, toy_root, tmp_path):
    """A fan_mm checkpoint written while the dense FAN backbones still held the class token's path: tools/test.py
    evaluates it (those weights are ones the backbone declares unused); --resume refuses it in plain words,
    since its optimizer state counts them, and names the way out (load_from)."""
    from fan_mm.models.backbones import FANHybrid
    work, _, _ = det_run
    with torch.device('meta'):
        stale = [k for k in FANHybrid(arch='tiny')._pruned_keys if k.startswith('trunk.cls_')]
    ckpt = torch.load(work / 'iter_3.pth', map_location='cpu', weights_only=False)
    ckpt['state_dict'].update({'backbone.' + k: torch.zeros(1) for k in stale})
    old = tmp_path / 'before_pruning.pth'
    torch.save(ckpt, old)
    out = run_tool('test.py', DET_CONFIG, str(old), '--work-dir', str(tmp_path / 'test'), cwd=toy_root)
    assert 'does not use by design are ignored' in out and 'coco/bbox_mAP' in out
    code, out = _run_raw('train.py', DET_CONFIG, '--resume', str(old), '--work-dir', str(tmp_path / 'resume'),
                         cwd=toy_root)
    assert code == 2, out[-3000:]
    assert 'cannot continue from it' in out and f'load_from={old}' in out
    assert 'Traceback' not in out


@pytest.mark.parametrize('content', [None, b'not a checkpoint'], ids=['missing', 'unreadable'])
def test_resume_from_a_missing_or_unreadable_file_exits_naming_it(toy_root, tmp_path, content):
    path = tmp_path / 'iter_3.pth'
    if content is not None:
        path.write_bytes(content)
    code, out = _run_raw('train.py', DET_CONFIG, '--resume', str(path), '--work-dir', str(tmp_path / 'work'),
                         cwd=toy_root)
    assert code == 2, out[-3000:]
    assert 'train: error: ' in out and str(path) in out
    assert 'Traceback' not in out
    assert not (tmp_path / 'work').exists() or not list((tmp_path / 'work').rglob('*.pth'))


def test_test_tool_reports_bbox_and_segm_map(det_run, toy_root):
    work, _, _ = det_run
    out_pkl = toy_root / 'det_results.pkl'
    out = run_tool('test.py', DET_CONFIG, str(work / 'iter_9.pth'), '--work-dir',
                   str(toy_root / 'work_det_test'), '--out', str(out_pkl), cwd=toy_root)
    for key in ('coco/bbox_mAP:', 'coco/bbox_mAP_50:', 'coco/segm_mAP:', 'coco/segm_mAP_50:'):
        assert key in out
    assert out_pkl.is_file() and out_pkl.stat().st_size > 0
    # the metrics also land in the work dir as JSON, one value per metric
    found = [osp.join(d, f) for d, _, fs in os.walk(toy_root / 'work_det_test')
             for f in fs if f.endswith('.json')]
    metrics = json.load(open(found[0]))
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0 and 0.0 <= metrics['coco/segm_mAP'] <= 1.0


def test_test_tool_rejects_a_missing_checkpoint(toy_root):
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), DET_CONFIG,
                          'no/such/file.pth'], cwd=toy_root, capture_output=True, text=True)
    assert res.returncode != 0 and 'checkpoint file not found: no/such/file.pth' in res.stderr


def test_segmentation_config_trains_and_reports_miou(toy_root):
    work = toy_root / 'work_seg'
    out = run_tool('train.py', SEG_CONFIG, '--work-dir', str(work), '--cfg-options',
                   'train_cfg.max_iters=4', 'train_cfg.val_interval=4',
                   'default_hooks.checkpoint.interval=4', 'default_hooks.logger.interval=1',
                   cwd=toy_root)
    assert 'mIoU' in out and (work / 'iter_4.pth').is_file()
    out = run_tool('test.py', SEG_CONFIG, str(work / 'iter_4.pth'), '--work-dir',
                   str(toy_root / 'work_seg_test'), cwd=toy_root)
    line = [ln for ln in out.splitlines() if 'Iter(test)' in ln and 'mIoU' in ln][-1]
    miou = float(line.split('mIoU:')[1].split()[0])
    assert 0.0 <= miou <= 100.0



def test_whole_backbone_compile_trains_validates_resumes_and_tests_like_eager(toy_root, tmp_path):
    """compile_blocks' scope='backbone' (the whole backbone as one graph, for fixed crops) through the real
    tools on the segmentation toy config (torch.compile's aot_eager backend on a CPU): training with an EMA of
    the weights (a deep copy, which must compile its own forward), validation during training, a --resume, and
    tools/test.py, whose mIoU equals the eager backbone's on the same checkpoint."""
    config = tmp_path / 'whole_toy.py'
    config.write_text(f'_base_ = [{SEG_CONFIG!r}]\n'
                      'model = dict(backbone=dict(compile_blocks=dict(_delete_=True, backend="aot_eager", '
                      'scope="backbone", on_cpu=True)))\n'
                      'custom_hooks = [dict(type="EMAHook", momentum=0.5)]\n')
    work = tmp_path / 'work'
    common = ['--work-dir', str(work), '--cfg-options', 'default_hooks.checkpoint.interval=2',
              'default_hooks.logger.interval=1', 'randomness.seed=0', 'train_cfg.val_interval=2']
    first = run_tool('train.py', str(config), *common, 'train_cfg.max_iters=2', cwd=toy_root)
    assert 'torch.compile on the whole backbone as one graph' in first
    assert re.search(r'first compiled forward [\d.]+ s, 1 graph compiled', first), first[-3000:]
    assert 'mIoU' in first  # validation at iteration 2, through the compiled forward
    resumed = run_tool('train.py', str(config), '--resume', str(work / 'iter_2.pth'), *common,
                       'train_cfg.max_iters=4', cwd=toy_root)
    assert 'resumed epoch: 0, iter: 2' in resumed and 'first compiled forward' in resumed and 'mIoU' in resumed
    mious = {}
    for name, cfg in (('whole', str(config)), ('eager', SEG_CONFIG)):
        out = run_tool('test.py', cfg, str(work / 'iter_4.pth'), '--work-dir', str(tmp_path / name), cwd=toy_root)
        assert ('first compiled forward' in out) == (name == 'whole')
        line = [ln for ln in out.splitlines() if 'Iter(test)' in ln and 'mIoU' in ln][-1]
        mious[name] = line.split('mIoU:')[1].split()[0]
    assert mious['whole'] == mious['eager'], mious

def _run_raw(tool, *args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool), *args], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=900)
    return res.returncode, res.stdout + res.stderr


def test_test_tool_refuses_a_checkpoint_that_does_not_fit(det_run, toy_root, tmp_path):
    """mmengine loads test checkpoints with strict=False: a foreign file used to evaluate random weights."""
    work, _, _ = det_run
    ckpt = torch.load(work / 'iter_9.pth', map_location='cpu', weights_only=False)
    # the same weights under other names (as from another codebase), plus one the model lacks
    foreign = {'model.' + k: v for k, v in ckpt['state_dict'].items()}
    foreign['head.extra.weight'] = torch.zeros(3)
    torch.save({'state_dict': foreign, 'meta': {}}, tmp_path / 'foreign.pth')
    code, out = _run_raw('test.py', DET_CONFIG, str(tmp_path / 'foreign.pth'), '--work-dir',
                         str(tmp_path / 'refused'), cwd=toy_root)
    assert code == 2, out[-3000:]
    assert 'does not fit the model' in out and 'weights the model needs are not in the file' in out
    assert 'have no place in the model' in out and '--allow-partial-checkpoint' in out
    assert 'coco/bbox_mAP' not in out  # nothing was evaluated

    # a deliberate partial load: the head is missing, the backbone and neck are there
    partial = {k: v for k, v in ckpt['state_dict'].items() if not k.startswith('roi_head.')}
    torch.save({'state_dict': partial, 'meta': {}}, tmp_path / 'partial.pth')
    code, out = _run_raw('test.py', DET_CONFIG, str(tmp_path / 'partial.pth'), '--work-dir',
                         str(tmp_path / 'partial'), cwd=toy_root)
    assert code == 2 and 'roi_head.' in out, out[-3000:]
    code, out = _run_raw('test.py', DET_CONFIG, str(tmp_path / 'partial.pth'), '--work-dir',
                         str(tmp_path / 'partial'), '--allow-partial-checkpoint', cwd=toy_root)
    assert code == 0, out[-3000:]
    assert 'Loading it anyway (--allow-partial-checkpoint)' in out and 'coco/bbox_mAP' in out


def test_check_checkpoint_reports_a_fitting_file(det_run):
    from mmengine.config import Config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import fan_mm.models  # noqa: F401
    from fan_mm.engine.runner import check_checkpoint
    register_all_modules()
    work, _, _ = det_run
    model = MODELS.build(Config.fromfile(DET_CONFIG).model)
    report = check_checkpoint(model, str(work / 'iter_9.pth'))
    assert report['fits'] and report['missing'] == report['unexpected'] == report['wrong_shape'] == 0
    assert report['weights_in_file'] == report['weights_in_model'] == len(model.state_dict())


def test_train_stops_on_a_non_finite_loss_without_a_final_checkpoint(toy_root, tmp_path):
    """lr 1e3 turns the loss non-finite within a few steps: the run must stop, name it and exit non-zero."""
    work = tmp_path / 'diverged'
    code, out = _run_raw('train.py', DET_CONFIG, '--work-dir', str(work), '--cfg-options',
                         'optim_wrapper.optimizer.lr=1000.0', 'optim_wrapper.clip_grad=None',
                         'param_scheduler=[]', 'train_cfg.max_iters=8', 'train_cfg.val_interval=100',
                         'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=10',
                         'default_hooks.logger.interval=1', 'randomness.seed=0', cwd=toy_root)
    assert code == 3, out[-3000:]
    assert 'train: error: training stopped at iteration' in out
    stopped = int(out.split('training stopped at iteration ')[1].split()[0])
    assert stopped < 8
    assert 'loss_cls=' in out and 'loss_rpn_cls=' in out  # the terms are named
    saved = sorted(int(f[len('iter_'):-len('.pth')]) for f in os.listdir(work) if f.startswith('iter_'))
    assert stopped not in saved and 8 not in saved and all(i < stopped for i in saved)
    for i in saved:  # whatever was saved before the stop holds finite weights
        state = torch.load(work / f'iter_{i}.pth', map_location='cpu', weights_only=False)['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_test_tool_says_plainly_when_the_detector_predicts_nothing(det_run, toy_root, tmp_path):
    work, _, _ = det_run
    code, out = _run_raw('test.py', DET_CONFIG, str(work / 'iter_9.pth'), '--work-dir', str(tmp_path / 'empty'),
                         '--cfg-options', 'model.test_cfg.rcnn.score_thr=1.01', cwd=toy_root)
    assert code == 0, out[-3000:]
    assert 'the model returned no detection on any of the 4 images' in out


@pytest.mark.slow  # four tool runs, each compiling the block graphs (~2 min on 2 cores)
def test_compiled_blocks_train_validate_resume_and_test_like_eager(det_run, toy_root, tmp_path):
    """The configs' fast path through the real tools: blocks compiled with dynamic shapes (what the detection
    bases set; torch.compile's aot_eager backend here, as inductor on a CPU takes minutes) in training with an
    EMA of the weights, in validation during training (gradients off), across a --resume, and in
    tools/test.py, whose detections equal the eager run's on the same checkpoint."""
    config = tmp_path / 'compiled_toy.py'
    # with an EMA of the weights (mmengine's EMAHook deep-copies the model: the copy drops the compiled calls;
    # validation swaps the averaged weights into the compiled model in place)
    config.write_text(f'_base_ = [{DET_CONFIG!r}]\n'
                      'model = dict(backbone=dict(compile_blocks=dict(_delete_=True, backend="aot_eager", '
                      'dynamic=True, on_cpu=True)))\n'
                      'custom_hooks = [dict(type="EMAHook", momentum=0.5)]\n')
    work = tmp_path / 'work'
    common = ['--work-dir', str(work), '--cfg-options', 'default_hooks.checkpoint.interval=2',
              'default_hooks.logger.interval=1', 'randomness.seed=0', 'train_cfg.val_interval=2']
    first = run_tool('train.py', str(config), *common, 'train_cfg.max_iters=2', cwd=toy_root)
    assert 'torch.compile on' in first and 'first compiled forward' in first
    assert 'coco/bbox_mAP' in first  # validation at iteration 2, with the compiled blocks
    resumed = run_tool('train.py', str(config), '--resume', str(work / 'iter_2.pth'), *common,
                       'train_cfg.max_iters=4', cwd=toy_root)
    assert 'resumed epoch: 0, iter: 2' in resumed and 'first compiled forward' in resumed
    assert 'coco/bbox_mAP' in resumed
    ckpt = torch.load(work / 'iter_4.pth', map_location='cpu', weights_only=False)
    assert any(k.startswith('module.backbone.trunk.blocks.') for k in ckpt['ema_state_dict'])
    eager_keys = torch.load(det_run[0] / 'iter_9.pth', map_location='cpu', weights_only=False)['state_dict']
    assert set(ckpt['state_dict']) == set(eager_keys)  # compiling changes no parameter name
    # the same detections (boxes and scores of every image) from the compiled and the eager backbone
    import pickle
    results = {}
    for name, cfg in (('compiled', str(config)), ('eager', DET_CONFIG)):
        out = run_tool('test.py', cfg, str(work / 'iter_4.pth'), '--work-dir', str(tmp_path / name), '--out',
                       str(tmp_path / f'{name}.pkl'), cwd=toy_root)
        assert ('first compiled forward' in out) == (name == 'compiled')
        with open(tmp_path / f'{name}.pkl', 'rb') as f:
            results[name] = sorted(pickle.load(f), key=lambda r: r['img_id'])
    assert sum(len(r['pred_instances']['scores']) for r in results['eager']) > 0
    for compiled, eager in zip(results['compiled'], results['eager']):
        for key in ('bboxes', 'scores', 'labels'):
            torch.testing.assert_close(compiled['pred_instances'][key], eager['pred_instances'][key],
                                       rtol=1e-3, atol=1e-2)
