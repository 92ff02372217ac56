# SegFormer head on FAN-B-Hybrid, Cityscapes 1024x1024 crops, 160k iterations; the recipe of
# segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py.
#
# Reported (FAN paper, Table 9): Cityscapes 82.2 mIoU, Cityscapes-C 66.9 mIoU, retention 81.5%
# (Table 13 gives 67.3 as the Cityscapes-C average).
#
# Pretrained weights: `fan_hybrid_base.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_hybrid_base.pth.tar. Nothing is downloaded.
_base_ = './segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py'

pretrained = 'pretrained/fan_hybrid_base.pth.tar'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 448, 448]))
