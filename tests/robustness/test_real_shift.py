"""Real-shift sets in the robustness evaluation and the report, end to end on generated samples.

One built model runs clean, a synthetic corruption and every condition of the real-shift sets; the results
share one resumable robustness.json, and the report puts them in one table and one plot.
"""
import json
import os.path as osp

import pytest

pytest.importorskip('mmseg.models')
pytest.importorskip('mmdet.models')

from fan_mm.datasets.real_shift import make_shift_sample  # noqa: E402
from fan_mm.robustness.evaluation import RobustnessError, evaluate_robustness  # noqa: E402
from fan_mm.robustness.report import write_report  # noqa: E402

from .conftest import DET_CFG, SEG_CFG, CountRuns, make_checkpoint  # noqa: E402


@pytest.fixture(scope='module')
def seg_shift_setup(toy_city, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('seg_shift')
    roots = {name: make_shift_sample(name, str(tmp / name)) for name in ('acdc', 'dark_zurich', 'foggy_cityscapes')}
    return dict(tmp=tmp, ckpt=make_checkpoint(SEG_CFG, tmp / 'seg.pth'), roots=roots,
                opts={'test_dataloader.dataset.data_root': toy_city})


def test_segmentation_synthetic_and_real_in_one_file_resumed_and_reported(seg_shift_setup, monkeypatch):
    s = seg_shift_setup
    work = str(s['tmp'] / 'work')
    shifts = {'acdc': s['roots']['acdc'], 'dark_zurich': s['roots']['dark_zurich']}
    counter = CountRuns(monkeypatch)
    results = evaluate_robustness(SEG_CFG, s['ckpt'], 'cityscapes-c', work, on_the_fly=True,
                                  corruptions=['gaussian_noise'], severities=[1], cfg_options=s['opts'],
                                  shifts=shifts)
    assert counter.n == 1 + 1 + 4 + 1
    assert list(results['real_shift']) == ['acdc', 'dark_zurich']
    assert list(results['real_shift']['acdc']) == ['fog', 'night', 'rain', 'snow']
    assert all('mIoU' in m and 'digest/value' in m for c in results['real_shift'].values() for m in c.values())
    assert results['meta']['shifts']['acdc']['data_root'] == osp.abspath(shifts['acdc'])
    # each condition was its own set of images: the predictions differ from the clean set's
    digests = {m['digest/value'] for c in results['real_shift'].values() for m in c.values()}
    assert results['clean']['digest/value'] not in digests

    # the same call again runs nothing; adding a set without a suite runs only its three conditions
    evaluate_robustness(SEG_CFG, s['ckpt'], 'cityscapes-c', work, on_the_fly=True, corruptions=['gaussian_noise'],
                        severities=[1], cfg_options=s['opts'], shifts=shifts)
    assert counter.n == 7
    more = evaluate_robustness(SEG_CFG, s['ckpt'], None, work, cfg_options=s['opts'],
                               shifts={'foggy_cityscapes': s['roots']['foggy_cityscapes']})
    assert counter.n == 10
    assert list(more['real_shift']) == ['acdc', 'dark_zurich', 'foggy_cityscapes']
    assert more['corrupted']['gaussian_noise']['1'] == results['corrupted']['gaussian_noise']['1']
    assert more['meta']['suite'] == 'cityscapes-c' and set(more['meta']['shifts']) == set(more['real_shift'])
    with open(osp.join(work, 'robustness.json')) as f:
        assert json.load(f)['real_shift']['acdc'] == results['real_shift']['acdc']

    # one table and one plot: clean, synthetic per category, real per condition, with retention
    out = str(s['tmp'] / 'report')
    written = write_report([osp.join(work, 'robustness.json')], out, corruptions=['gaussian_noise'],
                           severities=[1], formats=('md', 'png', 'json', 'csv', 'tex'))
    md = open(written['md'][0]).read()
    assert '### Synthetic corruptions and real adverse conditions' in md
    for label in ('Real: ACDC fog', 'Real: ACDC snow', 'Real: Dark Zurich night', 'Real: Foggy Cityscapes fog beta 0.02'):
        assert label in md
    clean = results['clean']['mIoU']
    fog = results['real_shift']['acdc']['fog']['mIoU']
    assert f'{fog:.1f} ({100 * fog / clean:.1f}%)' in md  # value (retention), hand-checked arithmetic
    assert 'Real-shift columns: ACDC: real images, val split, conditions fog, night, rain, snow' in md
    assert osp.getsize(osp.join(out, 'retention_mIoU.png')) > 0
    model = json.load(open(osp.join(out, 'report.json')))['mIoU']['models'][0]
    assert model['real_shift']['acdc/fog'] == pytest.approx(fog)
    # the same columns in the LaTeX tables and a CSV of their own
    tex = open(osp.join(out, 'tables_mIoU.tex')).read()
    assert 'Real: ACDC fog' in tex and f'{fog:.1f} ({100 * fog / clean:.1f}\\%)' in tex
    import csv
    rows = list(csv.DictReader(open(osp.join(out, 'real_shift_mIoU.csv'))))
    assert len(rows) == 4 + 1 + 3  # ACDC four conditions, Dark Zurich one, Foggy Cityscapes three betas
    acdc_fog = next(r for r in rows if (r['set'], r['condition']) == ('acdc', 'fog'))
    assert float(acdc_fog['value']) == pytest.approx(fog, abs=1e-4)
    assert float(acdc_fog['retention']) == pytest.approx(fog / clean, abs=1e-6)


def test_shifts_are_checked_before_the_model_runs(seg_shift_setup, tmp_path):
    s = seg_shift_setup
    with pytest.raises(RobustnessError, match='coco_o is a detection set; this is an mmseg model'):
        evaluate_robustness(SEG_CFG, s['ckpt'], None, str(tmp_path / 'w'), cfg_options=s['opts'],
                            shifts={'coco_o': str(tmp_path)})
    with pytest.raises(RobustnessError, match=r'ACDC under .* is incomplete: fog: missing folder'):
        evaluate_robustness(SEG_CFG, s['ckpt'], None, str(tmp_path / 'w'), cfg_options=s['opts'],
                            shifts={'acdc': str(tmp_path / 'nothing')})
    with pytest.raises(RobustnessError, match='nothing to evaluate'):
        evaluate_robustness(SEG_CFG, s['ckpt'], None, str(tmp_path / 'w'), cfg_options=s['opts'])


def test_detection_real_shift_uses_the_sets_annotations(toy_coco, tmp_path):
    ckpt = make_checkpoint(DET_CFG, tmp_path / 'det.pth')
    root = make_shift_sample('foggy_cityscapes_det', str(tmp_path / 'foggy'))
    opts = {'test_dataloader.dataset.data_root': toy_coco,
            'test_evaluator.0.ann_file': osp.join(toy_coco, 'annotations/instances_val.json'),
            'model.test_cfg.rcnn.score_thr': 0.0}
    results = evaluate_robustness(DET_CFG, ckpt, None, str(tmp_path / 'work'), cfg_options=opts,
                                  shifts={'foggy_cityscapes_det': root})
    assert list(results['real_shift']['foggy_cityscapes_det']) == ['0.005', '0.01', '0.02']
    assert all('coco/bbox_mAP' in m for m in results['real_shift']['foggy_cityscapes_det'].values())
    assert results['meta']['suite'] is None and results['corrupted'] == {}


def test_cli_parses_shifts_and_names_bad_ones():
    from .conftest import call_tool
    code, _, err = call_tool('test_robustness.py', SEG_CFG, 'x.pth', '--shifts', 'acdc2=data/x', '--work-dir', 'w')
    assert code == 2 and "unknown real-shift set 'acdc2'" in err
    code, _, err = call_tool('test_robustness.py', SEG_CFG, 'x.pth', '--work-dir', 'w')
    assert code == 2 and 'give a corruption suite (--suite) or real-shift sets (--shifts)' in err
    code, _, err = call_tool('test_robustness.py', SEG_CFG, 'x.pth', '--suite', 'cityscapes-c', '--work-dir', 'w')
    assert code == 2 and '--suite needs one of --corrupted-root DIR and --on-the-fly' in err
    code, _, err = call_tool('test_robustness.py', SEG_CFG, 'x.pth', '--shifts', 'acdc', 'acdc=data/y',
                             '--work-dir', 'w')
    assert code == 2 and "--shifts: 'acdc' is given twice" in err
    code, _, err = call_tool('test_robustness.py', SEG_CFG, 'x.pth', '--shifts', 'acdc', '--policy', 'noise-1-3',
                             '--seed', '3', '--work-dir', 'w')
    assert code == 2 and '--policy, --seed: only with a corruption suite (--suite)' in err
