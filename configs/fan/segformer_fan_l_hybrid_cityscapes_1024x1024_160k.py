# SegFormer head on FAN-L-Hybrid, Cityscapes 1024x1024 crops, 160k iterations; the recipe of
# segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py. The third map is the tokens after FAN
# block 18 of 22, as in the official large segmentation backbone.
#
# Reported (FAN paper, Table 9): Cityscapes 82.3 mIoU, Cityscapes-C 68.7 mIoU, retention 83.5%
# (Table 13 gives 68.5 as the Cityscapes-C average).
#
# Pretrained weights: the ImageNet-1K FAN-L-Hybrid checkpoint was never released (NVlabs/FAN
# issue #18). Put your own at pretrained/fan_hybrid_large.pth.tar, or use the released
# ImageNet-22K -> 1K one: --cfg-options
# model.backbone.init_cfg.checkpoint=pretrained/fan_hybrid_large_in22k_1k.pth.tar
_base_ = './segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py'

pretrained = 'pretrained/fan_hybrid_large.pth.tar'
model = dict(
    backbone=dict(arch='large', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 480, 480]))
