# Cascade Mask R-CNN + FPN with a FAN-B-Hybrid backbone, COCO, 3x schedule (36 epochs, lr steps
# after 27 and 33) with DETR-style multi-scale training; box heads as the official FAN
# configs (4 shared convs + 1 fc, SyncBN, GIoU loss); AdamW lr 1e-4, wd 0.05 (no decay on norms
# and position parameters), 8 GPUs x 2 images (the official configs: 1 image per GPU, GPU
# count not stated). Mixed precision as the official configs: tools/train.py --amp (fp16).
#
# Reported (NVlabs/FAN README): COCO 54.2 AP, COCO-C 40.6 AP (retention 74.9%, computed).
# The paper's Table 10 has no FAN-B row; its row labelled FAN-L-Hybrid (54.1 / 40.6 / 75.0%)
# matches this model, and Table 14 gives 39.0 as the FAN-B-Hybrid COCO-C average.
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_base.pth.tar`
# (NVlabs/FAN release v1.0.0) at pretrained/fan_hybrid_base.pth.tar, or set
# model.backbone.init_cfg.checkpoint with --cfg-options. Nothing is downloaded.
_base_ = [
    '../_base_/models/cascade_maskrcnn_fan_hybrid_fpn.py',
    '../_base_/coco_instance_adamw_ms_3x.py',
]

pretrained = 'pretrained/fan_hybrid_base.pth.tar'
model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 448, 768]))
