# Mask R-CNN + FPN with a FAN-T-Hybrid backbone, COCO, 3x schedule (36 epochs),
# DETR-style multi-scale training.
# AdamW lr 1e-4, wd 0.05 (no decay on norms and position parameters), 8 GPUs x 2 images.
# Recipe: ../_base_/coco_instance_adamw_ms_3x.py (the official FAN detection recipe).
#
# Reported (FAN paper, Table 10, Mask R-CNN; 3x multi-scale per App. A.2): COCO 45.8 AP,
# COCO-C 29.7 AP, retention 64.8%.
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_tiny.pth.tar`
# (NVlabs/FAN release v1.0.0) at pretrained/fan_hybrid_tiny.pth.tar, or set
# model.backbone.init_cfg.checkpoint with --cfg-options. Nothing is downloaded.
_base_ = [
    '../_base_/models/maskrcnn_fan_hybrid_fpn.py',
    '../_base_/coco_instance_adamw_ms_3x.py',
]

pretrained = 'pretrained/fan_hybrid_tiny.pth.tar'
model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 192, 768]))
