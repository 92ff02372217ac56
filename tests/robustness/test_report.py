"""Report arithmetic against hand-computed values and the FAN paper's own tables, refusal of
incomplete results, and the output files (Markdown, CSV, LaTeX, JSON, PNG)."""
import csv
import json
import math
import os.path as osp

import pytest

from fan_mm.robustness import protocol
from fan_mm.robustness.report import ReportError, default_metrics, latex_tables, summarize, table_categories

from .conftest import call_tool

# Hand-made results on the 4 hold-out corruptions (one per category), clean mIoU 80.
HOLDOUT = {
    'speckle_noise': {1: 60, 2: 50, 3: 40, 4: 0, 5: 0},  # 4 and 5 must be ignored under noise-1-3
    'gaussian_blur': {1: 70, 2: 65, 3: 60, 4: 55, 5: 50},
    'spatter': {1: 72, 2: 70, 3: 68, 4: 66, 5: 64},
    'saturate': {1: 78, 2: 76, 3: 74, 4: 72, 5: 70},
}


def _results(values, clean=80.0, suite='holdout', policy='1-5', metric='mIoU', task='mmseg', config='a/model.py'):
    return dict(clean={metric: clean, 'aAcc': 95.0},
                corrupted={c: {str(s): {metric: v, 'aAcc': 90.0} for s, v in sev.items()} for c, sev in values.items()},
                meta=dict(suite=suite, policy=policy, task=task, config=config))


def test_hand_computed_means_retention_mpc_rpc():
    s = summarize(_results(HOLDOUT, policy='noise-1-3'), 'mIoU')
    # speckle (60+50+40)/3 = 50, blur (70+65+60+55+50)/5 = 60, spatter 68, saturate 74
    assert s.per_corruption == pytest.approx({'speckle_noise': 50, 'gaussian_blur': 60, 'spatter': 68, 'saturate': 74})
    assert s.category_means == pytest.approx({'noise': 50, 'blur': 60, 'weather': 68, 'digital': 74})
    assert s.average == pytest.approx(63.0) and s.mpc == s.average  # (50+60+68+74)/4
    assert s.retention == pytest.approx(63.0 / 80) and s.rpc == s.retention  # 0.7875
    assert s.severities['speckle_noise'] == [1, 2, 3] and s.severities['spatter'] == [1, 2, 3, 4, 5]
    # Each corruption weighs the same whatever its number of severities (not the flat mean, 64.44).
    flat = (150 + 300 + 340 + 370) / 18
    assert not math.isclose(s.average, flat)

    s13 = summarize(_results(HOLDOUT, policy='noise-1-3'), 'mIoU', policy='1-3')
    # speckle 50, blur 65, spatter 70, saturate 76 -> 65.25
    assert s13.average == pytest.approx(65.25) and s13.retention == pytest.approx(65.25 / 80)
    s15 = summarize(_results(HOLDOUT), 'mIoU')  # 1-5 includes speckle's 0s: (30+60+68+74)/4 = 58
    assert s15.per_corruption['speckle_noise'] == pytest.approx(30) and s15.average == pytest.approx(58)
    sub = summarize(_results(HOLDOUT), 'mIoU', corruptions=['spatter', 'saturate'], severities=[5])
    assert sub.average == pytest.approx(67.0) and list(sub.categories) == ['weather', 'digital']


# FAN paper, Table 13 (Cityscapes-C, per corruption) and Table 9 (clean / City-C / retention).
TABLE13_ORDER = ['motion_blur', 'defocus_blur', 'glass_blur', 'gaussian_blur', 'gaussian_noise', 'impulse_noise',
                 'shot_noise', 'speckle_noise', 'brightness', 'contrast', 'saturate', 'jpeg_compression', 'snow',
                 'spatter', 'fog', 'frost']
TABLE13 = {
    'FAN-S-Hybrid': (81.5, 66.4, 81.5, [68.6, 68.9, 61.0, 70.0, 57.5, 61.3, 62.2, 71.5, 80.5, 74.9, 79.4, 62.1,
                                        47.4, 70.8, 77.9, 48.8]),
    'FAN-L-Hybrid': (82.3, 68.5, 83.2, [70.0, 69.9, 65.3, 71.6, 60.0, 64.5, 63.3, 71.6, 81.4, 76.2, 80.1, 62.3,
                                        53.1, 73.9, 78.9, 54.4]),
}


def test_reproduces_fan_table13_averages_and_table9_retention():
    cats = table_categories('cityscapes-c')  # the paper's column order, the engine's categories
    assert [c for v in cats.values() for c in v] == TABLE13_ORDER
    assert all(protocol.category_of('cityscapes-c', c) == cat for cat, v in cats.items() for c in v)
    _, plan = protocol.severity_plan('cityscapes-c', policy='noise-1-3')
    for name, (clean, average, retention, per_corr) in TABLE13.items():
        values = {c: {s: v for s in plan[c]} for c, v in zip(TABLE13_ORDER, per_corr)}
        s = summarize(_results(values, clean, 'cityscapes-c', 'noise-1-3'), 'mIoU', name=name)
        assert round(s.average, 1) == average, name
        assert round(100 * s.retention, 1) == pytest.approx(retention, abs=0.11), name
        assert list(s.categories) == ['blur', 'noise', 'digital', 'weather']
        assert s.category_means['blur'] == pytest.approx(sum(per_corr[:4]) / 4)


def test_coco_fractions_are_reported_in_percent_and_default_metrics():
    det = _results({c: {s: 0.2 for s in range(1, 6)} for c in HOLDOUT}, clean=0.4, metric='coco/bbox_mAP',
                   task='mmdet')
    for c in det['corrupted']:
        for s in det['corrupted'][c]:
            det['corrupted'][c][s]['coco/segm_mAP'] = 0.1
    det['clean']['coco/segm_mAP'] = 0.3
    assert default_metrics(det) == ['coco/bbox_mAP', 'coco/segm_mAP']
    s = summarize(det, 'coco/bbox_mAP')
    assert s.clean == pytest.approx(40.0) and s.average == pytest.approx(20.0) and s.retention == pytest.approx(0.5)
    assert summarize(det, 'coco/segm_mAP').retention == pytest.approx(1 / 3)
    assert default_metrics(_results(HOLDOUT)) == ['mIoU']


def test_refuses_incomplete_results_instead_of_averaging_zeros():
    partial = _results(HOLDOUT, policy='1-5')
    del partial['corrupted']['spatter']['4']
    partial['corrupted']['saturate']['2']['mIoU'] = float('nan')
    with pytest.raises(ReportError, match=r"2 of 20 .*'spatter/4', 'saturate/2'"):
        summarize(partial, 'mIoU', source='x.json')
    # ... but the same file is fine under a policy that does not need those entries.
    del partial['corrupted']['saturate']['2']
    with pytest.raises(ReportError, match='saturate/2'):
        summarize(partial, 'mIoU', policy='1-3')
    assert summarize(partial, 'mIoU', severities=[1, 3]).average == pytest.approx((50 + 65 + 70 + 76) / 4)
    only_two = _results({c: HOLDOUT[c] for c in ('spatter', 'saturate')})
    with pytest.raises(ReportError, match='speckle_noise/1'):
        summarize(only_two, 'mIoU')
    with pytest.raises(ReportError, match=r"metric 'mAP' is not in the clean results \(available: \['aAcc', 'mIoU'\]\)"):
        summarize(_results(HOLDOUT), 'mAP')


def test_writes_all_formats_for_several_models(tmp_path):
    _, plan = protocol.severity_plan('cityscapes-c', policy='noise-1-3')
    files = []
    for name, (clean, _, _, per_corr) in TABLE13.items():
        path = tmp_path / f'{name}.json'
        values = {c: {s: v - (s - 1) * 0.5 for s in plan[c]} for c, v in zip(TABLE13_ORDER, per_corr)}
        path.write_text(json.dumps(_results(values, clean, 'cityscapes-c', 'noise-1-3')))
        files.append(str(path))
    out = tmp_path / 'report'
    status, stdout, stderr = call_tool('robustness_report.py', *files, '--names', *TABLE13, '--out', out)
    assert status == 0, stderr
    md = (out / 'report_mIoU.md').read_text()
    assert '| FAN-S-Hybrid | 81.5 |' in md and 'noise-1-3' in md and 'Blur: Motion' in md
    assert stdout.strip().startswith('### Robustness overview')
    rows = list(csv.DictReader(open(out / 'summary_mIoU.csv')))
    s = summarize(json.load(open(files[0])), 'mIoU')
    assert [r['model'] for r in rows] == list(TABLE13)
    assert float(rows[0]['average_mPC']) == pytest.approx(s.average, abs=1e-4)
    assert float(rows[0]['retention_rPC']) == pytest.approx(s.retention, abs=1e-6)
    assert float(rows[0]['noise_mean']) == pytest.approx(s.category_means['noise'], abs=1e-4)
    detail = list(csv.DictReader(open(out / 'per_corruption_mIoU.csv')))
    assert len(detail) == 2 * (4 * 3 + 12 * 5 + 16)
    tex = (out / 'tables_mIoU.tex').read_text()
    assert r'\multicolumn{4}{c}{Noise}' in tex and r'FAN-S-Hybrid & 81.5 & ' in tex and r'noise-1-3' in tex
    assert f'{100 * s.retention:.1f}\\%' in tex
    report = json.load(open(out / 'report.json'))
    assert report['mIoU']['models'][1]['average'] == pytest.approx(summarize(json.load(open(files[1])), 'mIoU').average)
    pngs = sorted(p.name for p in out.glob('*.png'))
    assert pngs == ['retention_mIoU.png', 'severity_mIoU_FAN-L-Hybrid.png', 'severity_mIoU_FAN-S-Hybrid.png']
    for name in pngs:
        data = (out / name).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 20000

    # Incomparable or incomplete inputs: a clear refusal, no partial report.
    other = tmp_path / 'other.json'
    other.write_text(json.dumps(_results(HOLDOUT, policy='1-5')))
    status, _, stderr = call_tool('robustness_report.py', files[0], str(other), '--out', tmp_path / 'bad')
    assert status == 2 and 'cannot share a table' in stderr
    broken = json.loads(open(files[0]).read())
    del broken['corrupted']['fog']
    (tmp_path / 'broken.json').write_text(json.dumps(broken))
    status, _, stderr = call_tool('robustness_report.py', str(tmp_path / 'broken.json'), '--out', tmp_path / 'bad2')
    assert status == 2 and 'fog/1' in stderr and not osp.exists(tmp_path / 'bad2' / 'report_mIoU.md')
    (tmp_path / 'junk.json').write_text('{"a": 1}')
    status, _, stderr = call_tool('robustness_report.py', str(tmp_path / 'junk.json'), '--out', tmp_path / 'bad3')
    assert status == 2 and 'not a robustness results file' in stderr


def _with_protocol(results, channel_order='rgb', fmt='png', seed=0, engine_sha='0' * 64, on_the_fly=False):
    """``results`` with the protocol part of the meta that tools/test_robustness.py records."""
    meta = dict(results['meta'], channel_order=channel_order, seed=seed,
                mode='on-the-fly' if on_the_fly else 'disk',
                versions=dict(engine='fan_mm.corruptions', engine_version='1.0', engine_source_sha256=engine_sha))
    meta['data'] = dict(on_the_fly=True) if on_the_fly else dict(
        corrupted_root='/data/x', settings=dict(format=fmt, seed=seed, channel_order=channel_order,
                                                **({'jpeg_quality': 95} if fmt == 'jpeg' else {})))
    return dict(results, meta=meta)


@pytest.mark.parametrize('field, change', [
    ('channel_order', dict(channel_order='bgr_legacy')),
    ('image_format', dict(fmt='jpeg')),
    ('seed', dict(seed=1)),
    ('engine', dict(engine_sha='1' * 64)),
])
def test_refuses_a_table_of_results_made_under_different_protocols(tmp_path, field, change):
    from fan_mm.robustness.report import write_report
    a, b = tmp_path / 'a.json', tmp_path / 'b.json'
    a.write_text(json.dumps(_with_protocol(_results(HOLDOUT))))
    b.write_text(json.dumps(_with_protocol(_results(HOLDOUT), **change)))
    with pytest.raises(ReportError, match=f'different protocols.*{field}') as err:
        write_report([str(a), str(b)], str(tmp_path / 'bad'), formats=['md'])
    assert 'a.json' in str(err.value) and 'b.json' in str(err.value)
    assert not osp.exists(tmp_path / 'bad' / 'report_mIoU.md')


def test_report_records_the_protocol_and_the_published_tables_it_matches(tmp_path):
    from fan_mm.robustness.report import write_report
    # on the fly and a PNG copy give the same pixels: one table
    on_disk, in_memory = tmp_path / 'disk.json', tmp_path / 'fly.json'
    on_disk.write_text(json.dumps(_with_protocol(_results(HOLDOUT), channel_order='bgr_legacy')))
    in_memory.write_text(json.dumps(_with_protocol(_results(HOLDOUT), channel_order='bgr_legacy', on_the_fly=True)))
    write_report([str(on_disk), str(in_memory)], str(tmp_path / 'r1'), names=['a', 'b'], formats=['md', 'json', 'tex'])
    report = json.load(open(tmp_path / 'r1' / 'report.json'))['mIoU']
    assert report['protocol'] == dict(suite='holdout', policy='1-5', channel_order='bgr_legacy',
                                      image_format='lossless', seed=0,
                                      engine='fan_mm.corruptions 1.0 (source 000000000000)')
    assert report['comparable_with'] == []
    md = (tmp_path / 'r1' / 'report_mIoU.md').read_text()
    assert 'No published table was made under this protocol' in md
    # The LaTeX tables carry the Markdown's protocol line, as a comment in each table, escaped.
    md_line, = [line for line in md.splitlines() if line.startswith('Protocol: ')]
    tex = (tmp_path / 'r1' / 'tables_mIoU.tex').read_text().splitlines()
    comment = ('% Protocol: suite holdout, policy 1-5, channel order bgr\\_legacy, images lossless, seed 0, engine '
               'fan\\_mm.corruptions 1.0 (source 000000000000). No published table was made under this protocol.')
    assert comment == '% ' + md_line.replace('_', '\\_')
    assert tex.count(comment) == 2
    assert [i - 1 for i, line in enumerate(tex) if line == comment] == \
        [i for i, line in enumerate(tex) if line.startswith('\\caption{')]
    # a line break in a recorded field would end the comment and put the rest into the paper
    odd = _with_protocol(_results(HOLDOUT))
    odd['meta']['channel_order'] = 'rgb\n\\end{document}'
    tex = latex_tables([summarize(odd, 'mIoU')])
    assert 'channel order rgb \\textbackslash{}end\\{document\\}, ' in tex and '\n\\end{document}' not in tex
    # FAN's COCO-C: the 16 corruptions at 1-5, BGR arrays as if RGB, re-encoded as JPEG 95
    _, plan = protocol.severity_plan('cityscapes-c', policy='1-5')
    values = {c: {s: 0.3 for s in sevs} for c, sevs in plan.items()}
    coco = _with_protocol(_results(values, 0.45, 'cityscapes-c', '1-5', 'coco/bbox_mAP', 'mmdet'),
                          channel_order='bgr_legacy', fmt='jpeg')
    (tmp_path / 'coco.json').write_text(json.dumps(coco))
    write_report([str(tmp_path / 'coco.json')], str(tmp_path / 'r2'), formats=['md', 'json', 'tex'])
    assert json.load(open(tmp_path / 'r2' / 'report.json'))['coco/bbox_mAP']['comparable_with'] == [
        'FAN paper Tables 10 and 14 (COCO-C)']
    tex = (tmp_path / 'r2' / 'tables_bbox_mAP.tex').read_text()
    assert tex.count('% Protocol: suite cityscapes-c, policy 1-5, channel order bgr\\_legacy, images jpeg-95, '
                     'seed 0, ') == 2
    assert 'Same protocol as FAN paper Tables 10 and 14 (COCO-C).\n' in tex
    # the defaults (RGB, PNG) are not that protocol
    coco_rgb = _with_protocol(_results(values, 0.45, 'cityscapes-c', '1-5', 'coco/bbox_mAP', 'mmdet'))
    (tmp_path / 'coco_rgb.json').write_text(json.dumps(coco_rgb))
    write_report([str(tmp_path / 'coco_rgb.json')], str(tmp_path / 'r3'), formats=['json'])
    assert json.load(open(tmp_path / 'r3' / 'report.json'))['coco/bbox_mAP']['comparable_with'] == []


def test_report_of_real_shift_sets_alone(tmp_path):
    """A file evaluated on real-shift sets only (test_robustness.py --shifts, no suite): value and retention per
    condition in every format, hand-checked; no synthetic columns, no severity plots."""
    from fan_mm.robustness.report import write_report
    results = dict(
        clean={'mIoU': 80.0}, corrupted={},
        real_shift={'acdc': {'fog': {'mIoU': 60.0}, 'night': {'mIoU': 20.0}}},
        meta=dict(suite=None, task='mmseg', config='a/model.py',
                  shifts={'acdc': dict(title='ACDC', conditions=['fog', 'night'], data_root='data/acdc')}))
    summary = summarize(results, 'mIoU')
    assert summary.suite is None and summary.real_shift == {'acdc/fog': 60.0, 'acdc/night': 20.0}
    path = tmp_path / 'robustness.json'
    path.write_text(json.dumps(results))
    out = tmp_path / 'report'
    written = write_report([str(path)], str(out))
    md = open(written['md'][0]).read()
    assert '| Model | Clean | Real: ACDC fog | Real: ACDC night |' in md
    assert '60.0 (75.0%)' in md and '20.0 (25.0%)' in md and 'Synthetic' not in md
    tex = open(written['tex'][0]).read()
    assert '60.0 (75.0\\%)' in tex and 'Synthetic' not in tex
    assert [osp.basename(p) for p in written['csv']] == ['real_shift_mIoU.csv']
    rows = list(csv.DictReader(open(written['csv'][0])))
    assert [(r['condition'], r['retention']) for r in rows] == [('fog', '0.750000'), ('night', '0.250000')]
    assert [osp.basename(p) for p in written['png']] == ['retention_mIoU.png'] and osp.getsize(written['png'][0])
    def no_nan(token):
        raise ValueError(f'{token} in report.json')
    report = json.loads(open(written['json'][0]).read(), parse_constant=no_nan)['mIoU']  # strict JSON
    assert report['caption'].startswith('Real-shift columns: ACDC')
    assert report['models'][0]['average'] is None and report['models'][0]['real_shift']['acdc/fog'] == 60.0
    # a second model's file, made with another engine version and with one more condition: one table, and
    # the line under it names every condition
    other = json.loads(json.dumps(results))
    other['meta'].update(config='b/other.py', versions=dict(engine_source_sha256='f' * 64))
    other['real_shift']['acdc']['snow'] = {'mIoU': 40.0}
    other['meta']['shifts']['acdc']['conditions'] = ['fog', 'night', 'snow']
    path_b = tmp_path / 'b.json'
    path_b.write_text(json.dumps(other))
    md = open(write_report([str(path), str(path_b)], str(tmp_path / 'two'), formats=('md',))['md'][0]).read()
    assert '| other | 80.0 | 60.0 (75.0%) | 20.0 (25.0%) | 40.0 (50.0%) |' in md
    assert 'conditions fog, night, snow' in md
    # without real-shift results a missing suite is still an error
    with pytest.raises(ReportError, match='no suite recorded'):
        summarize(dict(results, real_shift={}), 'mIoU')


def test_real_shift_only_detection_report_skips_metrics_the_sets_lack(tmp_path):
    """Box-only sets (COCO-O, Foggy Cityscapes instances) give no mask mAP: the default metrics of a real-only
    file are those its real-shift runs have, and the report is complete (no half-written folder)."""
    from fan_mm.robustness.report import write_report
    results = dict(clean={'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.4}, corrupted={},
                   real_shift={'coco_o': {'sketch': {'coco/bbox_mAP': 0.2}}},
                   meta=dict(suite=None, task='mmdet', config='a/det.py',
                             shifts={'coco_o': dict(title='COCO-O', conditions=['sketch'], data_root='data/coco_o')}))
    assert default_metrics(results) == ['coco/bbox_mAP']
    path = tmp_path / 'robustness.json'
    path.write_text(json.dumps(results))
    written = write_report([str(path)], str(tmp_path / 'report'))
    assert [osp.basename(p) for p in written['md']] == ['report_bbox_mAP.md']
    assert '20.0 (40.0%)' in open(written['md'][0]).read()  # percent, retention 0.2 / 0.5
    with pytest.raises(ReportError, match='robustness.json: the results have no clean metrics'):
        default_metrics(dict(clean={}), 'robustness.json')
