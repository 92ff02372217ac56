# UPerNet (+ FCN auxiliary head) on FAN-Swin-T, Cityscapes 1024x1024 crops, 160k iterations,
# 8 GPUs x 1 image, with the recipe of the FAN SegFormer configs
# (../_base_/cityscapes_1024x1024_160k_adamw.py: AdamW lr 6e-5, wd 0.01, head lr x10, no decay
# on norms, position parameters and relative position bias tables, warmup + poly, slide
# inference 1024/768). Model: ../_base_/models/upernet_fan_swin.py (drop path 0.3).
#
# Reported: the papers have no FAN-Swin segmentation numbers (their Swin-T baseline, Table 9:
# Cityscapes 78.1, Cityscapes-C 47.3 mIoU, retention 60.6%).
#
# Pretrained weights: no FAN-Swin checkpoint was released (NVlabs/FAN issue #6). Train one with
# the official classification scripts (scripts/fan_swin/) and put it at
# pretrained/fan_swin_tiny_patch4_window7_224.pth.tar (official key names; any container).
_base_ = [
    '../_base_/models/upernet_fan_swin.py',
    '../_base_/cityscapes_1024x1024_160k_adamw.py',
]

crop_size = (1024, 1024)
pretrained = 'pretrained/fan_swin_tiny_patch4_window7_224.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=19),
    auxiliary_head=dict(in_channels=384, num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
