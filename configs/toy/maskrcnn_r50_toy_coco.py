# Control for the from-scratch check (docs/from_scratch.md): mmdet's ResNet-50 Mask R-CNN with the
# heads, data, schedule and optimiser of ./maskrcnn_fan_t_hybrid_toy_coco.py, trained from scratch
# (no ImageNet weights, every stage and BatchNorm trained). A backbone that the toy recipe cannot
# train falls behind this one; `python tools/analysis/train_from_scratch.py det` runs both.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/toy_coco.py',
]

model = dict(
    backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
    # toy-sized heads (half the FPN width, a quarter of the box FC width, two mask convs):
    # a few objects of four shapes per image need far less capacity, and the heads are most of a
    # CPU training step
    neck=dict(out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=4),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(in_channels=128, conv_out_channels=128, num_convs=2, num_classes=4)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))
