# SegFormer head on FAN-S-Hybrid, Cityscapes 1024x1024 crops, 160k iterations, 8 GPUs x 1 image.
# Recipe of the official FAN segmentation code, on mmseg 1.x (see ../_base_/ for the details):
# AdamW lr 6e-5, wd 0.01, head lr x10, no decay on norms and position parameters, 1500-iteration
# warmup then poly decay, slide inference (crop 1024, stride 768).
#
# Reported (FAN paper, Table 9): Cityscapes 81.5 mIoU, Cityscapes-C 66.4 mIoU, retention 81.5%.
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_small.pth.tar` (NVlabs/FAN
# release v1.0.0) at pretrained/fan_hybrid_small.pth.tar, or set
# model.backbone.init_cfg.checkpoint with --cfg-options. Nothing is downloaded.
_base_ = [
    '../_base_/models/segformer_fan_hybrid.py',
    '../_base_/cityscapes_1024x1024_160k_adamw.py',
]

crop_size = (1024, 1024)
pretrained = 'pretrained/fan_hybrid_small.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 384, 384]),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
