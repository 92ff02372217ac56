# UPerNet on LV-ViT-S with the official side-layer pyramid, ADE20K 512x512 crops, 160k
# iterations, 8 GPUs x 4 images: the official LV-ViT segmentation recipe
# (TokenLabeling seg/configs/lvvit/upernet_lvvit_s_512x512_160k_ade20k.py) on mmseg 1.x --
# AdamW lr 6e-5, wd 0.01, warmup 1500 iterations then poly, slide inference 512/341; see
# ../_base_/ade20k_512x512_160k_adamw.py and ../_base_/models/upernet_lvvit.py.
# Departures from the official config: no weight decay on norms and position parameters; the
# backbone runs the classification trunk as trained (LayerNorm eps 1e-5, stochastic depth 0.1
# where the official copy turned the rate into MLP dropout; see fan_mm/models/backbones/lvvit.py).
#
# Reported (TokenLabeling README): ADE20K 47.9 mIoU single-scale, 48.6 multi-scale, 83.1 pixel
# accuracy, 44M parameters (this config builds 44.5M). No corrupted-data (ADE20K-C) number is reported.
#
# Pretrained weights: the official ImageNet-1K checkpoint `lvvit_s-26M-224-83.3.pth.tar`
# (zihangJiang/TokenLabeling release 1.0) at pretrained/lvvit_s-26M-224-83.3.pth.tar; the
# official config leaves the path empty. The position embedding is resized to the 32x32 grid of
# the 512 crops when loading. Nothing is downloaded.
_base_ = [
    '../_base_/models/upernet_lvvit.py',
    '../_base_/ade20k_512x512_160k_adamw.py',
]

crop_size = (512, 512)
pretrained = 'pretrained/lvvit_s-26M-224-83.3.pth.tar'
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='small', img_size=512, drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[384, 384, 384, 2048], channels=256),
    auxiliary_head=dict(in_channels=384),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))
