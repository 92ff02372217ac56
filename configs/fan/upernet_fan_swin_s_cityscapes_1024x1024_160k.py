# UPerNet (+ FCN auxiliary head) on FAN-Swin-S (stages of 2, 2, 18, 2 blocks), Cityscapes
# 1024x1024 crops, 160k iterations; the recipe of upernet_fan_swin_t_cityscapes_1024x1024_160k.py.
#
# Reported: the papers have no FAN-Swin segmentation numbers.
#
# Pretrained weights: no FAN-Swin checkpoint was released (NVlabs/FAN issue #6); put your own at
# pretrained/fan_swin_small_patch4_window7_224.pth.tar (official key names; any container).
_base_ = './upernet_fan_swin_t_cityscapes_1024x1024_160k.py'

pretrained = 'pretrained/fan_swin_small_patch4_window7_224.pth.tar'
model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
