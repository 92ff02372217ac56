# UPerNet on LV-ViT-L (taps after blocks 14, 17, 20, 23; 128-channel stem) with the official
# side-layer pyramid, ADE20K 512x512 crops, 160k iterations, 8 GPUs x 2 images; the decoder
# and the auxiliary head are 512 channels wide, as in the official L config (S and M: 256);
# otherwise the recipe of upernet_lvvit_s_ade20k_512x512_160k.py (official:
# upernet_lvvit_l_512x512_160k_ade20k.py, img_size 448, drop path 0.5).
# Departure: the residual scaling is the classification model's 1/3 (skip_lam 3.0, what the
# ImageNet weights were trained with); the official L config left it at 1.0.
#
# Reported (TokenLabeling README): ADE20K 50.9 mIoU single-scale, 51.8 multi-scale, 84.1 pixel
# accuracy, 209M parameters (this config builds 208.6M). No corrupted-data (ADE20K-C) number is reported.
#
# Pretrained weights: `lvvit_l-150M-448-86.2.pth.tar` (zihangJiang/TokenLabeling release 1.0)
# at pretrained/lvvit_l-150M-448-86.2.pth.tar (its position embedding is for 448 px, as the
# official config's img_size). Nothing is downloaded.
_base_ = './upernet_lvvit_s_ade20k_512x512_160k.py'

pretrained = 'pretrained/lvvit_l-150M-448-86.2.pth.tar'
model = dict(
    backbone=dict(arch='large', img_size=448, drop_path_rate=0.5,
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[768, 768, 768, 2048], channels=512),
    auxiliary_head=dict(in_channels=768, channels=512))

train_dataloader = dict(batch_size=2)
# 8 GPUs x 2 images; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(base_batch_size=16)
