# SETR-PUP on FAN-S-ViT, Cityscapes 1024x1024 crops, 160k iterations, 8 GPUs x 1 image. The FAN
# paper (App. A.2) fine-tunes FAN-ViT with SETR's decoders and SegFormer's training setting:
# ../_base_/cityscapes_1024x1024_160k_adamw.py (AdamW lr 6e-5, wd 0.01, head lr x10, no decay on
# norms and position parameters, warmup + poly, slide inference 1024/768). Model:
# ../_base_/models/setr_pup_fan_vit.py. Drop path 0.1.
#
# Reported: the paper gives no FAN-ViT segmentation numbers (its SETR row, DeiT-S: Cityscapes
# 76.0, Cityscapes-C 55.3 mIoU, retention 72.8%, Table 9, is the baseline to compare with).
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_vit_small.pth.tar`
# (NVlabs/FAN release v1.0.0) at pretrained/fan_vit_small.pth.tar. Nothing is downloaded.
_base_ = [
    '../_base_/models/setr_pup_fan_vit.py',
    '../_base_/cityscapes_1024x1024_160k_adamw.py',
]

crop_size = (1024, 1024)
pretrained = 'pretrained/fan_vit_small.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))
