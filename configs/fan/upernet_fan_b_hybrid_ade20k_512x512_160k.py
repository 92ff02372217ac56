# UPerNet (+ FCN auxiliary head) on FAN-B-Hybrid, ADE20K 512x512 crops, 160k iterations, with
# the recipe of the LV-ViT UPerNet configs (../_base_/ade20k_512x512_160k_adamw.py: AdamW lr
# 6e-5, wd 0.01, no decay on norms and position parameters, warmup + poly, 8 GPUs x 4 images,
# slide inference 512/341). The backbone uses its pyramid layout (1/4, 1/8, 1/16, 1/32); see
# ../_base_/models/upernet_fan_hybrid.py. Drop path 0.2 (uniform).
#
# Reported: no number in the papers (a robust-backbone counterpart of the LV-ViT configs in
# ../lvvit/, e.g. LV-ViT-M UPerNet: 49.4 mIoU single-scale with 77M parameters).
#
# Pretrained weights: `fan_hybrid_base.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_hybrid_base.pth.tar. Nothing is downloaded.
_base_ = [
    '../_base_/models/upernet_fan_hybrid.py',
    '../_base_/ade20k_512x512_160k_adamw.py',
]

crop_size = (512, 512)
pretrained = 'pretrained/fan_hybrid_base.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='base', drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 448, 768], num_classes=150),
    auxiliary_head=dict(in_channels=448, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
