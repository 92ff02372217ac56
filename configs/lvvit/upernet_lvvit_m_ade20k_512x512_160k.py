# UPerNet on LV-ViT-M (taps after blocks 10, 13, 16, 19) with the official side-layer pyramid,
# ADE20K 512x512 crops, 160k iterations; the recipe of upernet_lvvit_s_ade20k_512x512_160k.py
# (official: upernet_lvvit_m_512x512_160k_ade20k.py), drop path 0.2.
#
# Reported (TokenLabeling README): ADE20K 49.4 mIoU single-scale, 50.6 multi-scale, 83.5 pixel
# accuracy, 77M parameters (this config builds 77.3M). No corrupted-data (ADE20K-C) number is reported.
#
# Pretrained weights: `lvvit_m-56M-224-84.0.pth.tar` (zihangJiang/TokenLabeling release 1.0) at
# pretrained/lvvit_m-56M-224-84.0.pth.tar (the official config leaves the path empty; the 384
# and 448 checkpoints load as well). Nothing is downloaded.
_base_ = './upernet_lvvit_s_ade20k_512x512_160k.py'

pretrained = 'pretrained/lvvit_m-56M-224-84.0.pth.tar'
model = dict(
    backbone=dict(arch='medium', drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[512, 512, 512, 2048]),
    auxiliary_head=dict(in_channels=512))
