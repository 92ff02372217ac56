# UPerNet (+ FCN auxiliary head) on FAN-B-Hybrid, Cityscapes 1024x1024 crops, 160k iterations;
# the recipe of upernet_fan_s_hybrid_cityscapes_1024x1024_160k.py.
#
# Reported: the papers have no FAN UPerNet on Cityscapes; compare with the SegFormer head on the
# same backbone (segformer_fan_b_hybrid_cityscapes_1024x1024_160k.py: 82.2 / 66.9 mIoU).
#
# Pretrained weights: `fan_hybrid_base.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_hybrid_base.pth.tar. Nothing is downloaded.
_base_ = './upernet_fan_s_hybrid_cityscapes_1024x1024_160k.py'

pretrained = 'pretrained/fan_hybrid_base.pth.tar'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 448, 768]),
    auxiliary_head=dict(in_channels=448))
