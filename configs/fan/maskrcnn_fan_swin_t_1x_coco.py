# Mask R-CNN + FPN with a FAN-Swin-T backbone, COCO, 1x schedule (12 epochs),
# single-scale training.
# AdamW lr 1e-4, wd 0.05 (no decay on norms, position parameters and relative position bias
# tables), 8 GPUs x 2 images. Recipe: ../_base_/coco_instance_adamw_1x.py.
#
# Reported: the papers give no FAN-Swin detection numbers (their Mask R-CNN Swin-T baseline,
# Table 10: COCO 46.0, COCO-C 29.3 AP, retention 63.7%).
#
# Pretrained weights: no FAN-Swin checkpoint was released (NVlabs/FAN issue #6). Train one with
# the official classification scripts (scripts/fan_swin/) and put it at
# pretrained/fan_swin_tiny_patch4_window7_224.pth.tar (official key names; any container).
_base_ = [
    '../_base_/models/maskrcnn_fan_swin_fpn.py',
    '../_base_/coco_instance_adamw_1x.py',
]

pretrained = 'pretrained/fan_swin_tiny_patch4_window7_224.pth.tar'
model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
