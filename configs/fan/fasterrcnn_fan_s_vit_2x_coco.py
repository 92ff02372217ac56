# Faster R-CNN + FPN with a FAN-S-ViT backbone, COCO, 2x schedule (24 epochs), multi-scale
# training with square sizes 640-896 and testing at 896 -- the FAN paper's setting for FAN-ViT
# detection (App. A.2). AdamW lr 1e-4, wd 0.05 (no decay on norms and position parameters),
# 8 GPUs x 2 images. Recipe: ../_base_/coco_detection_adamw_ms_2x.py; model:
# ../_base_/models/fasterrcnn_fan_vit_fpn.py.
#
# Reported: the paper describes this setting but prints no FAN-ViT detection number (its COCO
# tables, 10 and 14, report FAN-Hybrid models).
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_vit_small.pth.tar`
# (NVlabs/FAN release v1.0.0) at pretrained/fan_vit_small.pth.tar. Nothing is downloaded.
_base_ = [
    '../_base_/models/fasterrcnn_fan_vit_fpn.py',
    '../_base_/coco_detection_adamw_ms_2x.py',
]

pretrained = 'pretrained/fan_vit_small.pth.tar'
model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 384]))
