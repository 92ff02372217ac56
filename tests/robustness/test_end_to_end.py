"""End to end on the toy datasets with small standard models (seeded random weights):
synthesise, evaluate from disk and on the fly (same numbers), resume, report; for an mmseg
(IoUMetric) and an mmdet (CocoMetric bbox + segm) config. A test-only metric
(``PredictionDigest``) checksums every prediction, so "same numbers" also means "same
pixels seen", even where a random model's mAP is 0."""
import json
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

from fan_mm.robustness.evaluation import RobustnessError, evaluate_robustness, load_results  # noqa: E402
from fan_mm.robustness.report import write_report  # noqa: E402
from fan_mm.robustness.synthesis import synthesize  # noqa: E402

from .conftest import DATA, DET_CFG, REPO, SEG_CFG, CountRuns, make_checkpoint, run_tool  # noqa: E402

SEG_PLAN = dict(suite='cityscapes-c', corruptions=['gaussian_noise', 'frost'], severities=[1, 3])
DET_PLAN = dict(suite='coco-c', corruptions=['shot_noise', 'contrast'], severities=[2])


@pytest.fixture(scope='module')
def seg_setup(toy_city, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('seg')
    ckpt = make_checkpoint(SEG_CFG, tmp / 'seg.pth')
    dst = str(tmp / 'city-c')
    result = synthesize(toy_city, dst, workers=2, progress=False, **SEG_PLAN)
    assert result.ok
    return dict(tmp=tmp, ckpt=ckpt, dst=dst, opts={'test_dataloader.dataset.data_root': toy_city})


def _digests(results):
    return [results['clean']['digest/value']] + [
        m['digest/value'] for sev in results['corrupted'].values() for m in sev.values()]


def test_segmentation_disk_equals_on_the_fly_and_resumes(seg_setup, monkeypatch):
    s = seg_setup
    runs = CountRuns(monkeypatch)
    disk = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'disk'), corrupted_root=s['dst'],
                               cfg_options=s['opts'], **SEG_PLAN)
    assert runs.n == 5  # clean + 2 corruptions x 2 severities, one Runner
    fly = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'fly'), on_the_fly=True,
                              cfg_options=s['opts'], **SEG_PLAN)
    assert disk['clean'] == fly['clean'] and disk['corrupted'] == fly['corrupted']
    assert set(disk['clean']) >= {'mIoU', 'aAcc', 'digest/value'} and disk['clean']['digest/images'] == 4
    assert sorted(disk['corrupted']) == ['frost', 'gaussian_noise'] and list(disk['corrupted']['frost']) == ['1', '3']
    digests = _digests(disk)
    assert len(set(digests)) == len(digests), 'every corruption and severity changes the predictions'
    on_file = load_results(str(s['tmp'] / 'disk' / 'robustness.json'))
    assert on_file['corrupted'] == disk['corrupted'] and on_file['meta']['mode'] == 'disk'
    assert on_file['meta']['policy'] == 'custom' and on_file['meta']['severities']['frost'] == [1, 3]
    assert on_file['meta']['versions']['mmseg'] and on_file['meta']['seed'] == 0

    # Run again: nothing to do. Add a severity: only that run.
    runs.n = 0
    again = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'fly'), on_the_fly=True,
                                cfg_options=s['opts'], **SEG_PLAN)
    assert runs.n == 0 and again['corrupted'] == fly['corrupted']
    more = dict(SEG_PLAN, corruptions=['frost'], severities=[1, 3, 5])
    extended = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'fly'), on_the_fly=True,
                                   cfg_options=s['opts'], **more)
    assert runs.n == 1 and list(extended['corrupted']['frost']) == ['1', '3', '5']
    assert extended['corrupted']['gaussian_noise'] == fly['corrupted']['gaussian_noise']  # kept

    # mmdet's legacy channel order changes frost (BGR array corrupted as RGB).
    legacy = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'legacy'), on_the_fly=True,
                                 cfg_options=s['opts'], suite='cityscapes-c', corruptions=['frost'],
                                 severities=[3], channel_order='bgr_legacy')
    assert legacy['clean'] == fly['clean']
    assert legacy['corrupted']['frost']['3']['digest/value'] != fly['corrupted']['frost']['3']['digest/value']

    # Refusals: the work dir belongs to another evaluation; a folder made with another seed.
    with pytest.raises(RobustnessError, match='another evaluation'):
        evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'fly'), on_the_fly=True, seed=1,
                            cfg_options=s['opts'], **SEG_PLAN)
    with pytest.raises(RobustnessError, match='made with seed=0, not 3'):
        evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'x'), corrupted_root=s['dst'], seed=3,
                            cfg_options=s['opts'], **SEG_PLAN)
    with pytest.raises(RobustnessError, match=r"lacks complete .*'frost/5'"):
        evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(s['tmp'] / 'x'), corrupted_root=s['dst'],
                            cfg_options=s['opts'], **more)

    # The report refuses the partial-severity file under policy 1-5 and reports it as run.
    out = s['tmp'] / 'report'
    written = write_report([str(s['tmp'] / 'disk' / 'robustness.json')], str(out), metrics=['mIoU', 'digest/value'],
                           corruptions=SEG_PLAN['corruptions'])
    md = open(written['md'][0]).read()
    assert 'gaussian_noise' in md and 'severities 1,3' in md
    report = json.load(open(written['json'][0]))
    digest = report['digest/value']['models'][0]
    assert digest['clean'] == disk['clean']['digest/value']
    assert digest['per_corruption']['frost'] == pytest.approx(
        (disk['corrupted']['frost']['1']['digest/value'] + disk['corrupted']['frost']['3']['digest/value']) / 2)


def test_evaluation_killed_and_resumed(seg_setup, tmp_path):
    s = seg_setup
    args = [SEG_CFG, s['ckpt'], '--suite', SEG_PLAN['suite'], '--corruptions', *SEG_PLAN['corruptions'],
            '--severities', '1', '3', '--corrupted-root', s['dst'], '--cfg-options',
            f"test_dataloader.dataset.data_root={s['opts']['test_dataloader.dataset.data_root']}"]
    expected = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(tmp_path / 'reference'), corrupted_root=s['dst'],
                                   cfg_options=s['opts'], **SEG_PLAN)

    work = tmp_path / 'killed'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, DATA]), PYTHONWARNINGS='ignore', FANMM_TEST_SLEEP='0.5')
    proc = subprocess.Popen([sys.executable, osp.join(REPO, 'tools', 'test_robustness.py'), *args,
                             '--work-dir', str(work)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results_file = work / 'robustness.json'
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if results_file.exists():
                partial = json.loads(results_file.read_text())  # always complete JSON (atomic writes)
                if partial['clean'] and partial['corrupted']:
                    break
            assert proc.poll() is None, 'the evaluation ended before it could be killed'
            time.sleep(0.1)
        else:
            pytest.fail('no results within 300 s')
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = json.loads(results_file.read_text())
    done = sum(len(v) for v in partial['corrupted'].values())
    assert 1 <= done < 4
    cp = run_tool('test_robustness.py', *args, '--work-dir', work)
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert f'{1 + done} of 5 runs already in' in cp.stdout + cp.stderr
    final = load_results(str(results_file))
    assert final['clean'] == expected['clean'] and final['corrupted'] == expected['corrupted']
    for c, sev in partial['corrupted'].items():  # what was there is kept as it was
        for k, v in sev.items():
            assert final['corrupted'][c][k] == v

    cp = run_tool('test_robustness.py', *args[:2], '--suite', 'cityscapes-c', '--on-the-fly',
                  '--corrupted-root', s['dst'], '--work-dir', tmp_path / 'bad')
    assert cp.returncode == 2 and 'not allowed with argument' in cp.stderr


@pytest.fixture(scope='module')
def coco_jpeg(toy_coco, tmp_path_factory):
    """The toy COCO val split re-encoded as JPEG (as real COCO), annotations renamed."""
    root = tmp_path_factory.mktemp('cocojpg') / 'coco'
    (root / 'val').mkdir(parents=True)
    (root / 'annotations').mkdir()
    ann = json.load(open(osp.join(toy_coco, 'annotations', 'instances_val.json')))
    for image in ann['images']:
        img = cv2.imread(osp.join(toy_coco, 'val', image['file_name']))
        image['file_name'] = image['file_name'].replace('.png', '.jpg')
        cv2.imwrite(str(root / 'val' / image['file_name']), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (root / 'annotations' / 'instances_val.json').write_text(json.dumps(ann))
    return str(root)


def test_detection_disk_equals_on_the_fly_with_jpeg_sources(coco_jpeg, tmp_path, monkeypatch):
    ckpt = make_checkpoint(DET_CFG, tmp_path / 'det.pth')
    dst = str(tmp_path / 'coco-c')
    assert synthesize(coco_jpeg, dst, layout='folder', image_dir='val', workers=0, progress=False, **DET_PLAN).ok
    assert sorted(os.listdir(osp.join(dst, 'contrast', '2', 'val'))) == [f'{i:06d}.png' for i in range(4)]
    opts = {'test_dataloader.dataset.data_root': coco_jpeg,
            'test_evaluator.0.ann_file': osp.join(coco_jpeg, 'annotations', 'instances_val.json')}
    runs = CountRuns(monkeypatch)
    disk = evaluate_robustness(DET_CFG, ckpt, work_dir=str(tmp_path / 'disk'), corrupted_root=dst,
                               cfg_options=opts, **DET_PLAN)
    fly = evaluate_robustness(DET_CFG, ckpt, work_dir=str(tmp_path / 'fly'), on_the_fly=True, cfg_options=opts,
                              **DET_PLAN)
    assert runs.n == 6
    assert disk['clean'] == fly['clean'] and disk['corrupted'] == fly['corrupted']
    assert {'coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50', 'digest/value'} <= set(disk['clean'])
    digests = _digests(disk)
    assert len(set(digests)) == 3 and disk['clean']['digest/images'] == 4
    # The JPEG sources were never touched: deleting the -C folder breaks only the disk mode.
    shutil.rmtree(osp.join(dst, 'contrast', '2', 'val'))
    with pytest.raises(RobustnessError, match='4 of 4 images are missing'):
        evaluate_robustness(DET_CFG, ckpt, work_dir=str(tmp_path / 'disk2'), corrupted_root=dst,
                            cfg_options=opts, **DET_PLAN)
    out = tmp_path / 'report'
    written = write_report([str(tmp_path / 'disk' / 'robustness.json'), str(tmp_path / 'fly' / 'robustness.json')],
                           str(out), names=['disk', 'on-the-fly'], corruptions=DET_PLAN['corruptions'])
    assert sorted(osp.basename(p) for p in written['md']) == ['report_bbox_mAP.md', 'report_segm_mAP.md']
    md = open(written['md'][0]).read()
    assert md.count('| disk |') == 2 and md.count('| on-the-fly |') == 2  # overview + per corruption


@pytest.mark.slow
def test_distributed_two_processes_give_the_same_numbers(seg_setup, tmp_path):
    s = seg_setup
    single = evaluate_robustness(SEG_CFG, s['ckpt'], work_dir=str(tmp_path / 'single'), on_the_fly=True,
                                 cfg_options=s['opts'], suite='cityscapes-c', corruptions=['frost'], severities=[1, 3])
    args = [SEG_CFG, s['ckpt'], '2', '--suite', 'cityscapes-c', '--corruptions', 'frost', '--severities', '1', '3',
            '--on-the-fly', '--work-dir', str(tmp_path / 'dist'), '--cfg-options',
            f"test_dataloader.dataset.data_root={s['opts']['test_dataloader.dataset.data_root']}"]
    env = dict(os.environ, PYTHONPATH=DATA, PYTHONWARNINGS='ignore', PORT=str(29500 + os.getpid() % 1000),
               OMP_NUM_THREADS='1')
    cp = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_test_robustness.sh'), *args], env=env,
                        capture_output=True, text=True, timeout=600)
    assert cp.returncode == 0, cp.stderr[-4000:]
    dist = load_results(str(tmp_path / 'dist' / 'robustness.json'))
    assert dist['meta']['world_size'] == 2 and single['meta']['world_size'] == 1
    assert dist['clean'] == single['clean'] and dist['corrupted'] == single['corrupted']
