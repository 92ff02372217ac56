# UPerNet (+ FCN auxiliary head) on FAN-S-Hybrid, Cityscapes 1024x1024 crops, 160k iterations,
# 8 GPUs x 1 image, with the recipe of the SegFormer configs (../_base_/
# cityscapes_1024x1024_160k_adamw.py: AdamW lr 6e-5, wd 0.01, head lr x10, no decay on norms
# and position parameters, warmup + poly, slide inference 1024/768). The backbone uses its
# pyramid layout (1/4, 1/8, 1/16, 1/32); see ../_base_/models/upernet_fan_hybrid.py.
#
# Reported: the papers have no FAN UPerNet on Cityscapes; compare with the SegFormer head on the
# same backbone (segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py: 81.5 / 66.4 mIoU).
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_small.pth.tar`
# (NVlabs/FAN release v1.0.0) at pretrained/fan_hybrid_small.pth.tar. Nothing is downloaded.
_base_ = [
    '../_base_/models/upernet_fan_hybrid.py',
    '../_base_/cityscapes_1024x1024_160k_adamw.py',
]

crop_size = (1024, 1024)
pretrained = 'pretrained/fan_hybrid_small.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 384, 768], num_classes=19),
    auxiliary_head=dict(in_channels=384, num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
