# Mask R-CNN + FPN with a FAN-B-Hybrid backbone, COCO, 1x schedule (12 epochs),
# single-scale training.
# AdamW lr 1e-4, wd 0.05 (no decay on norms and position parameters), 8 GPUs x 2 images.
# Recipe: ../_base_/coco_instance_adamw_1x.py (the official FAN detection recipe, 1x schedule).
#
# Reported: no number in the papers for this configuration.
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_base.pth.tar`
# (NVlabs/FAN release v1.0.0) at pretrained/fan_hybrid_base.pth.tar, or set
# model.backbone.init_cfg.checkpoint with --cfg-options. Nothing is downloaded.
_base_ = [
    '../_base_/models/maskrcnn_fan_hybrid_fpn.py',
    '../_base_/coco_instance_adamw_1x.py',
]

pretrained = 'pretrained/fan_hybrid_base.pth.tar'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 448, 768]))
