# SETR-PUP on FAN-B-ViT (18 blocks; taps after blocks 6, 11, 17 and class attention),
# Cityscapes 1024x1024 crops, 160k iterations; setr_pup_fan_s_vit_cityscapes_1024x1024_160k.py
# with the base backbone (the decode and auxiliary heads read 448 channels).
#
# Reported: the paper gives no FAN-ViT segmentation numbers.
#
# Pretrained weights: `fan_vit_base.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_vit_base.pth.tar. Nothing is downloaded.
_base_ = './setr_pup_fan_s_vit_cityscapes_1024x1024_160k.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
pretrained = 'pretrained/fan_vit_base.pth.tar'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=448),
    auxiliary_head=[
        dict(type='SETRUPHead', in_channels=448, channels=256, in_index=i, num_classes=19,
             dropout_ratio=0, norm_cfg=norm_cfg, num_convs=2, up_scale=4, kernel_size=3,
             align_corners=False,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
        for i in (0, 1, 2)
    ])
