# Cascade Mask R-CNN + FPN with FAN-L-Hybrid pretrained on ImageNet-22K and fine-tuned on
# ImageNet-1K (the paper's FAN-L-Hybrid dagger / -IN22K), COCO, 3x multi-scale; otherwise
# cascade_maskrcnn_fan_l_hybrid_3x_coco.py. The official counterpart is
# detection/configs/cascade_mask_fan_large_fpn_3x_mstrain_fp16_22k.py.
#
# Reported (FAN paper, Table 10; NVlabs/FAN README, FAN-L-Hybrid row): COCO 55.1 AP,
# COCO-C 42.0 AP, retention 76.2%.
#
# Pretrained weights: `fan_hybrid_large_in22k_1k.pth.tar` (NVlabs/FAN release v1.0.0) at
# pretrained/fan_hybrid_large_in22k_1k.pth.tar. Nothing is downloaded.
_base_ = './cascade_maskrcnn_fan_l_hybrid_3x_coco.py'

pretrained = 'pretrained/fan_hybrid_large_in22k_1k.pth.tar'
model = dict(backbone=dict(init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
