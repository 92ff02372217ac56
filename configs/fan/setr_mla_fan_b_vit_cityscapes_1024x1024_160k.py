# SETR-MLA on FAN-B-ViT (18 blocks; taps after blocks 6, 11, 17 and class attention),
# Cityscapes 1024x1024 crops, 160k iterations; setr_mla_fan_s_vit_cityscapes_1024x1024_160k.py
# with the base backbone (the MLA neck reads 448 channels).
#
# Reported: the paper gives no FAN-ViT segmentation numbers.
#
# Pretrained weights: `fan_vit_base.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_vit_base.pth.tar. Nothing is downloaded.
_base_ = './setr_mla_fan_s_vit_cityscapes_1024x1024_160k.py'

pretrained = 'pretrained/fan_vit_base.pth.tar'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[448, 448, 448, 448]))
