"""The toy datasets load unchanged in mmdet's CocoDataset and mmseg's CityscapesDataset, run
through typical pipelines, and score 100 % when their own ground truth is fed to the metrics."""
import json
import os.path as osp

import numpy as np
import pytest

from mmengine.registry import DefaultScope

from fan_mm.datasets.toy import CITYSCAPES_USED_TRAIN_IDS, COCO_CLASSES, COCO_METAINFO, IGNORE_INDEX


def _coco_dataset(root, split, pipeline, test_mode=False, metainfo=dict(classes=COCO_CLASSES)):
    from mmdet.datasets import CocoDataset
    return CocoDataset(data_root=root, ann_file=f'annotations/instances_{split}.json',
                       data_prefix=dict(img=f'{split}/'), metainfo=metainfo,
                       pipeline=pipeline, test_mode=test_mode)


def test_mmdet_coco_dataset_train_pipeline(toy_coco):
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='Resize', scale=(512, 384), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = _coco_dataset(toy_coco.root, 'train', train_pipeline, metainfo=COCO_METAINFO)
        assert len(dataset) == toy_coco.manifest['params']['num_train']
        assert dataset.metainfo['classes'] == COCO_CLASSES
        assert list(dataset.metainfo['palette']) == list(COCO_METAINFO['palette'])
        assert dataset.cat_ids == [1, 2, 3, 4]
        with open(osp.join(toy_coco.root, 'annotations', 'instances_train.json')) as f:
            coco = json.load(f)
        for index in range(len(dataset)):
            info = dataset.get_data_info(index)
            anns = [a for a in coco['annotations'] if a['image_id'] == info['img_id']]
            assert [i['bbox_label'] for i in info['instances']] == [a['category_id'] - 1 for a in anns]
            item = dataset[index]
            gt = item['data_samples'].gt_instances
            assert item['inputs'].shape == (3, 384, 512)
            assert len(gt) == len(anns) and gt.labels.tolist() == [a['category_id'] - 1 for a in anns]
            # Resized 2x: mask areas scale by 4 and match the boxes.
            areas = gt.masks.areas
            assert np.allclose(areas, [4 * a['area'] for a in anns], rtol=0.05)
            boxes = gt.bboxes.tensor.numpy()
            assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_mmdet_coco_ground_truth_scores_full_map(toy_coco):
    """Feed each val image's annotations, as loaded by mmdet, to CocoMetric as predictions:
    bbox and segm mAP must be 1.0 (the JSON, the masks and mmdet's parsing agree)."""
    import torch
    from mmdet.evaluation import CocoMetric
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
    ]
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = _coco_dataset(toy_coco.root, 'val', pipeline, test_mode=True)
        assert len(dataset) == toy_coco.manifest['params']['num_val']
        metric = CocoMetric(ann_file=osp.join(toy_coco.root, 'annotations', 'instances_val.json'),
                            metric=['bbox', 'segm'])
        metric.dataset_meta = dataset.metainfo
        for index in range(len(dataset)):
            sample = dataset[index]['data_samples']
            gt = sample.gt_instances
            pred = dict(bboxes=gt.bboxes.tensor, labels=gt.labels, scores=torch.ones(len(gt)),
                        masks=torch.from_numpy(gt.masks.to_ndarray().astype(bool)))
            metric.process({}, [dict(img_id=sample.img_id, ori_shape=sample.ori_shape, pred_instances=pred)])
        results = metric.evaluate(len(dataset))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_mmdet_coco_test_pipeline(toy_coco):
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(1333, 800), keep_ratio=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
    ]
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = _coco_dataset(toy_coco.root, 'val', test_pipeline, test_mode=True)
        item = dataset[0]
    assert item['data_samples'].ori_shape == (192, 256)
    assert item['inputs'].shape == (3, 800, 1067)


def _cityscapes_dataset(root, split, pipeline):
    from mmseg.datasets import CityscapesDataset
    return CityscapesDataset(data_root=root, data_prefix=dict(img_path=f'leftImg8bit/{split}',
                                                              seg_map_path=f'gtFine/{split}'),
                             pipeline=pipeline)


def test_mmseg_cityscapes_dataset_pipelines(toy_cityscapes):
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomResize', scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
        dict(type='RandomCrop', crop_size=(128, 128), cat_max_ratio=0.75),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PhotoMetricDistortion'),
        dict(type='PackSegInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(512, 256), keep_ratio=True),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]
    allowed = set(CITYSCAPES_USED_TRAIN_IDS) | {IGNORE_INDEX}
    params = toy_cityscapes.manifest['params']
    with DefaultScope.overwrite_default_scope('mmseg'):
        train = _cityscapes_dataset(toy_cityscapes.root, 'train', train_pipeline)
        val = _cityscapes_dataset(toy_cityscapes.root, 'val', test_pipeline)
        assert len(train) == params['num_train'] and len(val) == params['num_val']
        assert len(train.metainfo['classes']) == 19
        for index in range(3):
            item = train[index]
            assert item['inputs'].shape == (3, 128, 128)
            assert set(item['data_samples'].gt_sem_seg.data.unique().tolist()) <= allowed
        for index in range(len(val)):
            info = val.get_data_info(index)
            assert info['img_path'].endswith('_leftImg8bit.png')
            assert info['seg_map_path'] == info['img_path'].replace(
                osp.join(toy_cityscapes.root, 'leftImg8bit'), osp.join(toy_cityscapes.root, 'gtFine')).replace(
                '_leftImg8bit.png', '_gtFine_labelTrainIds.png')
            item = val[index]
            seg = item['data_samples'].gt_sem_seg.data
            assert item['inputs'].shape == (3, 256, 512)
            # The test pipeline loads the label at its original size (mmseg evaluates there).
            assert seg.shape == (1, 128, 256)
            values = set(seg.unique().tolist())
            assert values <= allowed and {0, 1, 2, 10} <= values


def test_mmseg_ground_truth_scores_full_miou(toy_cityscapes):
    from mmseg.evaluation import IoUMetric
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
    with DefaultScope.overwrite_default_scope('mmseg'):
        val = _cityscapes_dataset(toy_cityscapes.root, 'val', pipeline)
        metric = IoUMetric(iou_metrics=['mIoU'])
        metric.dataset_meta = val.metainfo
        seen = set()
        for index in range(len(val)):
            sample = val[index]['data_samples']
            gt = sample.gt_sem_seg.data
            seen |= set(gt.unique().tolist())
            metric.process({}, [dict(pred_sem_seg=dict(data=gt.clone()), gt_sem_seg=dict(data=gt))])
        results = metric.evaluate(len(val))
    assert results['mIoU'] == pytest.approx(100.0)
    assert results['aAcc'] == pytest.approx(100.0)
    assert seen - {IGNORE_INDEX} <= set(CITYSCAPES_USED_TRAIN_IDS) and len(seen) >= 6
