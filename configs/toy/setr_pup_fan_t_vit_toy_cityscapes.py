# SETR-PUP on FAN-T-ViT (four same-scale 1/16 maps), trained on fan_mm's generated
# Cityscapes-layout toy dataset (`python tools/make_toy_dataset.py cityscapes
# data/toy_cityscapes`). Same model and optimiser as
# ../fan/setr_pup_fan_s_vit_cityscapes_1024x1024_160k.py with the tiny backbone from scratch and
# 64-wide heads, shrunk to run on a CPU (./_base_/toy_cityscapes.py). Used by the tests; not a
# benchmark.
_base_ = [
    '../_base_/models/setr_pup_fan_vit.py',
    './_base_/toy_cityscapes.py',
]

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(arch='tiny'),
    decode_head=dict(in_channels=192, channels=64),
    auxiliary_head=[
        dict(type='SETRUPHead', in_channels=192, channels=64, in_index=i, num_classes=19,
             dropout_ratio=0, norm_cfg=norm_cfg, num_convs=2, up_scale=4, kernel_size=3,
             align_corners=False,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
        for i in (0, 1, 2)
    ],
    test_cfg=dict(mode='whole'))
