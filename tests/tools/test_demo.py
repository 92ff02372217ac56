"""The README's main job: tools/demo.py (shortened to 2 training iterations)."""
import json
import os.path as osp
import subprocess
import sys

from fan_mm.demo import format_results

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_format_results_computes_retention():
    results = {'clean': {'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.0},
               'corrupted': {'fog': {'3': {'coco/bbox_mAP': 0.2, 'coco/segm_mAP': 0.0}}}}
    lines = format_results(results, 'fog', 3).splitlines()
    bbox = [ln for ln in lines if ln.startswith('coco/bbox_mAP ')][0].split()
    assert bbox[1:] == ['0.500', '0.200', '40.0%']
    segm = [ln for ln in lines if ln.startswith('coco/segm_mAP ')][0].split()
    assert segm[-1] == 'n/a'  # no retention of a zero clean score
    assert not any(ln.startswith('note:') for ln in lines)


def test_format_results_flags_retention_of_100_percent_or_more():
    results = {'clean': {'coco/bbox_mAP': 0.7, 'coco/bbox_mAP_50': 0.99},
               'corrupted': {'fog': {'5': {'coco/bbox_mAP': 0.5, 'coco/bbox_mAP_50': 1.0}}}}
    lines = format_results(results, 'fog', 5).splitlines()
    assert lines[-1].startswith('note: coco/bbox_mAP_50 not measurably hurt')


def test_demo_runs_end_to_end(tmp_path):
    res = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--max-iters', '2',
         '--work-dir', str(tmp_path / 'work'), '--data-root', str(tmp_path / 'toy_coco'),
         '--num-train', '8', '--num-val', '4'],
        cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    assert 'gaussian_noise s5' in res.stdout and 'coco/segm_mAP' in res.stdout
    results = json.load(open(tmp_path / 'work' / 'robustness' / 'robustness.json'))
    assert set(results['corrupted']) == {'gaussian_noise'}
    assert set(results['corrupted']['gaussian_noise']) == {'5'}
    assert 'coco/bbox_mAP' in results['clean']
    # the console shows the table, progress bars and where things went, not mmengine's log
    assert 'Config:' not in res.stdout and 'Average Precision' not in res.stdout
    log = open(tmp_path / 'work' / 'demo.log').read()
    assert 'Config:' in log and 'Average Precision' in log  # ...which went to demo.log
    assert 'train: 100%' in res.stderr and '2/2' in res.stderr  # the training progress bar
    assert 'report (tables, plots):' in res.stdout and (tmp_path / 'work' / 'report').is_dir()
    assert results['meta']['checkpoint_check']['fits'] is True


def test_demo_names_a_bad_corruption_and_severity(tmp_path):
    for args, message in ((['--corruption', 'fogg'], "unknown corruption 'fogg'"),
                          (['--severity', '7'], 'severity must be an integer in 1..5')):
        res = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'demo.py'), '--work-dir',
                              str(tmp_path / 'work'), *args], cwd=tmp_path, capture_output=True, text=True)
        assert res.returncode == 2 and message in res.stderr, res.stderr[-2000:]
        assert not (tmp_path / 'work' / 'train').exists()
