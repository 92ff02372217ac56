# Cascade Mask R-CNN + FPN with FAN-B-Hybrid pretrained on ImageNet-22K and fine-tuned on
# ImageNet-1K at 384 px (the checkpoint of the official
# detection/configs/cascade_mask_fan_base_fpn_3x_mstrain_fp16_22k.py), COCO, 3x multi-scale;
# otherwise cascade_maskrcnn_fan_b_hybrid_3x_coco.py. The Fourier position encoding is
# computed for any input size, so the 384-px checkpoint needs no resizing.
#
# Reported (FAN paper, Table 14, FAN-B-Hybrid-IN22k): COCO-C 40.6 AP (average over the
# corruptions); no clean COCO number is given for it.
#
# Pretrained weights: `fan_hybrid_base_in22k_1k_384.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_hybrid_base_in22k_1k_384.pth.tar. Nothing is downloaded.
_base_ = './cascade_maskrcnn_fan_b_hybrid_3x_coco.py'

pretrained = 'pretrained/fan_hybrid_base_in22k_1k_384.pth.tar'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
