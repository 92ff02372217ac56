# Mask R-CNN + FPN with a FAN-L-Hybrid backbone, COCO, 3x schedule (36 epochs),
# DETR-style multi-scale training.
# AdamW lr 1e-4, wd 0.05 (no decay on norms and position parameters), 8 GPUs x 2 images.
# Recipe: ../_base_/coco_instance_adamw_ms_3x.py (the official FAN detection recipe).
#
# Reported: no number in the papers for this configuration.
#
# Pretrained weights: the ImageNet-1K FAN-L-Hybrid checkpoint was never released (NVlabs/FAN
# issue #18). Put your own at pretrained/fan_hybrid_large.pth.tar, or use the released
# ImageNet-22K -> 1K one (the paper's FAN-L-Hybrid-IN22K): --cfg-options
# model.backbone.init_cfg.checkpoint=pretrained/fan_hybrid_large_in22k_1k.pth.tar
_base_ = [
    '../_base_/models/maskrcnn_fan_hybrid_fpn.py',
    '../_base_/coco_instance_adamw_ms_3x.py',
]

pretrained = 'pretrained/fan_hybrid_large.pth.tar'
model = dict(
    backbone=dict(arch='large', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 480, 768]))
