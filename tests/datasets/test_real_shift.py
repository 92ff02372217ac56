"""Real-shift test sets: official layouts, the layout check, the mm dataset classes, evaluation on them.

The samples are generated in each set's official layout (file names, folders, label IDs, COCO json) by
``make_shift_sample``; nothing is downloaded.
"""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fan_mm.datasets.real_shift import (SHIFT_SETS, check_shift_set, foggy_file_name, make_shift_sample,
                                        shift_dataset_config)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SEG_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
DET_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape'))]


@pytest.fixture(scope='module')
def samples(tmp_path_factory):
    base = tmp_path_factory.mktemp('real_shift')
    return {name: make_shift_sample(name, str(base / name)) for name in SHIFT_SETS}


def test_official_file_names_and_folders(samples):
    assert osp.isfile(osp.join(samples['acdc'], 'rgb_anon/fog/val/GOPR0475/GOPR0475_frame_000001_rgb_anon.png'))
    assert osp.isfile(osp.join(samples['acdc'], 'gt/fog/val/GOPR0475/GOPR0475_frame_000001_gt_labelTrainIds.png'))
    assert osp.isfile(osp.join(samples['dark_zurich'],
                               'gt/val/night/GOPR0356/GOPR0356_frame_000321_gt_labelTrainIds.png'))
    for beta in ('0.005', '0.01', '0.02'):
        assert osp.isfile(osp.join(samples['foggy_cityscapes'], 'leftImg8bit_foggy/val/frankfurt',
                                   f'frankfurt_000000_000000_leftImg8bit_foggy_beta_{beta}.png'))
    assert osp.isfile(osp.join(samples['foggy_cityscapes'],
                               'gtFine/val/frankfurt/frankfurt_000000_000000_gtFine_labelTrainIds.png'))
    assert osp.isfile(osp.join(samples['foggy_cityscapes_det'], 'annotations/instancesonly_filtered_gtFine_val.json'))
    for domain in ('cartoon', 'handmake', 'painting', 'sketch', 'tattoo', 'weather'):
        assert osp.isfile(osp.join(samples['coco_o'], domain, 'annotations/instances_val2017.json'))
    assert foggy_file_name('lindau/lindau_000001_000019_leftImg8bit.png', '0.01') == \
        'lindau/lindau_000001_000019_leftImg8bit_foggy_beta_0.01.png'


@pytest.mark.parametrize('name', sorted(SHIFT_SETS))
def test_generated_samples_pass_the_check(samples, name):
    report = check_shift_set(name, samples[name])
    assert set(report) == set(SHIFT_SETS[name].conditions)
    assert all(r['problems'] == [] and r['images'] == 2 for r in report.values()), report


def test_check_names_what_is_missing_or_malformed(tmp_path):
    root = make_shift_sample('acdc', str(tmp_path / 'acdc'))
    os.remove(osp.join(root, 'gt/fog/val/GOPR0475/GOPR0475_frame_000001_gt_labelTrainIds.png'))
    # a labelIds map (Cityscapes' full IDs, e.g. 26 = car) where train IDs belong
    cv2.imwrite(osp.join(root, 'gt/rain/val/GOPR0476/GOPR0476_frame_000002_gt_labelTrainIds.png'),
                np.full((4, 4), 26, np.uint8))
    os.rename(osp.join(root, 'rgb_anon/snow'), osp.join(root, 'rgb_anon/snowy'))
    report = check_shift_set('acdc', root)
    assert report['night']['problems'] == []
    assert report['fog']['images'] == 1 and 'have no *_gt_labelTrainIds.png label (e.g. GOPR0475' in \
        report['fog']['problems'][0]
    assert 'values [26] outside the train IDs 0..18' in report['rain']['problems'][0]
    assert report['snow']['problems'] == [f'missing folder {root}/rgb_anon/snow/val']
    with pytest.raises(ValueError, match="unknown condition 'haze'"):
        check_shift_set('acdc', root, ['haze'])
    with pytest.raises(ValueError, match="unknown real-shift set 'acdc2'"):
        check_shift_set('acdc2', root)


def test_check_reports_missing_images_of_a_coco_file(tmp_path):
    root = make_shift_sample('coco_o', str(tmp_path / 'coco_o'))
    os.remove(osp.join(root, 'sketch/val2017/000000000002.jpg'))
    os.remove(osp.join(root, 'tattoo/annotations/instances_val2017.json'))
    report = check_shift_set('coco_o', root)
    assert report['sketch']['images'] == 1 and '1 of 2 images listed' in report['sketch']['problems'][0]
    assert 'missing annotation file' in report['tattoo']['problems'][0]


def test_check_tool_exit_codes(tmp_path):
    tool = osp.join(ROOT, 'tools', 'check_real_shift.py')
    ok = subprocess.run([sys.executable, tool, 'dark_zurich', str(tmp_path / 'dz'), '--make-sample'],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and 'Dark Zurich / night: 2 images, ok' in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, tool, 'acdc', str(tmp_path / 'nothing')], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 1 and 'missing folder' in bad.stdout and 'acdc.vision.ee.ethz.ch' in bad.stderr


@pytest.mark.parametrize('name,condition', [('acdc', 'night'), ('foggy_cityscapes', '0.01'),
                                            ('dark_zurich', 'night')])
def test_segmentation_sets_load_and_score_in_mmseg(samples, name, condition):
    pytest.importorskip('mmseg.models')
    import torch
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import DATASETS
    from mmseg.utils import register_all_modules
    import fan_mm.datasets.real_shift_datasets  # noqa: F401  (registers the datasets)
    register_all_modules()

    dataset = DATASETS.build(shift_dataset_config(name, condition, samples[name], SEG_PIPELINE))
    assert len(dataset) == 2 and dataset.metainfo['classes'][0] == 'road'
    item = dataset[0]
    gt = item['data_samples'].gt_sem_seg.data
    assert set(torch.unique(gt).tolist()) <= set(range(19)) | {255}
    if name == 'foggy_cityscapes':
        assert item['data_samples'].img_path.endswith(f'_leftImg8bit_foggy_beta_{condition}.png')
    # the ground truth as prediction scores 100 mIoU on the classes present; a prediction of all road scores
    # road's IoU = |road| / (|road| + |non-road, non-ignore|) and 0 elsewhere (hand-checked arithmetic)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    metric.process([], [dict(pred_sem_seg=dict(data=gt), gt_sem_seg=dict(data=gt))])
    assert metric.compute_metrics(metric.results)['mIoU'] == 100.0
    metric.results.clear()
    road = torch.zeros_like(gt)
    metric.process([], [dict(pred_sem_seg=dict(data=road), gt_sem_seg=dict(data=gt))])
    valid = gt != 255
    present = len(set(torch.unique(gt[valid]).tolist()))
    road_iou = float((gt == 0).sum()) / float(valid.sum())
    assert metric.compute_metrics(metric.results)['mIoU'] == pytest.approx(100 * road_iou / present, abs=0.01)


def test_unknown_condition_and_missing_folder_fail_at_construction(samples, tmp_path):
    pytest.importorskip('mmseg.models')
    from mmseg.registry import DATASETS
    import fan_mm.datasets.real_shift_datasets  # noqa: F401
    with pytest.raises(ValueError, match="acdc: unknown condition 'dusk'"):
        DATASETS.build(dict(type='ACDCDataset', condition='dusk', data_root=samples['acdc'], pipeline=[]))
    with pytest.raises(FileNotFoundError, match='Foggy Cityscapes 0.02: folder .*leftImg8bit_foggy/val does not exist'):
        DATASETS.build(shift_dataset_config('foggy_cityscapes', '0.02', str(tmp_path), SEG_PIPELINE))


@pytest.mark.parametrize('name,condition', [('foggy_cityscapes_det', '0.005'), ('coco_o', 'cartoon')])
def test_detection_sets_load_and_score_in_mmdet(samples, name, condition):
    pytest.importorskip('mmdet.models')
    import torch
    from mmdet.evaluation import CocoMetric
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    import fan_mm.datasets.real_shift_datasets  # noqa: F401
    register_all_modules()

    cfg = shift_dataset_config(name, condition, samples[name], DET_PIPELINE)
    dataset = DATASETS.build(cfg)
    assert len(dataset) == 2
    if name == 'foggy_cityscapes_det':
        assert dataset.metainfo['classes'][0] == 'person' and len(dataset.metainfo['classes']) == 8
        assert dataset[0]['data_samples'].img_path.endswith('_leftImg8bit_foggy_beta_0.005.png')
    else:
        assert len(dataset.metainfo['classes']) == 80  # COCO's classes
    # the annotations as detections score bbox mAP 1.0
    metric = CocoMetric(ann_file=osp.join(cfg['data_root'], cfg['ann_file']), metric='bbox')
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        item = dataset[i]['data_samples']
        boxes = item.gt_instances.bboxes.tensor if hasattr(item.gt_instances.bboxes, 'tensor') else \
            item.gt_instances.bboxes
        pred = dict(bboxes=torch.as_tensor(boxes), scores=torch.ones(len(boxes)), labels=item.gt_instances.labels)
        metric.process([], [dict(img_id=item.img_id, ori_shape=item.ori_shape, pred_instances=pred)])
    assert metric.compute_metrics(metric.results)['bbox_mAP'] == pytest.approx(1.0)
    with open(osp.join(cfg['data_root'], cfg['ann_file'])) as f:
        assert len(json.load(f)['images']) == 2
