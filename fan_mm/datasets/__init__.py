"""Datasets made by fan_mm (``toy``) and dataset helpers. Nothing here imports mmdet/mmseg."""
from .toy import (CITYSCAPES_USED_TRAIN_IDS, COCO_CLASSES, COCO_METAINFO, COCO_PALETTE, make_toy_cityscapes,
                  make_toy_coco, make_toy_dataset, verify_toy_dataset)

__all__ = [
    'COCO_CLASSES', 'COCO_PALETTE', 'COCO_METAINFO', 'CITYSCAPES_USED_TRAIN_IDS', 'make_toy_coco',
    'make_toy_cityscapes', 'make_toy_dataset', 'verify_toy_dataset',
]
