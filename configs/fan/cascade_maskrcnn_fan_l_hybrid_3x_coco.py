# Cascade Mask R-CNN + FPN with a FAN-L-Hybrid backbone, COCO, 3x schedule (36 epochs, lr steps
# after 27 and 33) with DETR-style multi-scale training; box heads as the official FAN
# configs (4 shared convs + 1 fc, SyncBN, GIoU loss); AdamW lr 1e-4, wd 0.05 (no decay on norms
# and position parameters), 8 GPUs x 2 images (the official configs: 1 image per GPU, GPU
# count not stated). Mixed precision as the official configs: tools/train.py --amp (fp16).
#
# Reported: the ImageNet-1K model has no unambiguous number (see the B config); with the
# ImageNet-22K -> 1K checkpoint (FAN-L-Hybrid-IN22K, paper's FAN-L-Hybrid dagger): COCO 55.1 AP,
# COCO-C 42.0 AP, retention 76.2% (Table 10; also the README's FAN-L-Hybrid row).
#
# Pretrained weights: the ImageNet-1K FAN-L-Hybrid checkpoint was never released (NVlabs/FAN
# issue #18). Put your own at pretrained/fan_hybrid_large.pth.tar, or use the released
# ImageNet-22K -> 1K one (the paper's FAN-L-Hybrid-IN22K): --cfg-options
# model.backbone.init_cfg.checkpoint=pretrained/fan_hybrid_large_in22k_1k.pth.tar
_base_ = [
    '../_base_/models/cascade_maskrcnn_fan_hybrid_fpn.py',
    '../_base_/coco_instance_adamw_ms_3x.py',
]

pretrained = 'pretrained/fan_hybrid_large.pth.tar'
model = dict(
    backbone=dict(arch='large', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 480, 768]))
