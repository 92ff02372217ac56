# Cascade Mask R-CNN (the official FAN box heads: 4 convs + 1 fc, GIoU) on FAN-T-Hybrid, on
# fan_mm's generated COCO-format toy dataset (`python tools/make_toy_dataset.py coco
# data/toy_coco`). Same model and optimiser as ../fan/cascade_maskrcnn_fan_t_hybrid_3x_coco.py,
# shrunk to run on a CPU (./_base_/toy_coco.py): backbone from scratch, 256x192 input, fewer
# proposals. Used by the tests; not a benchmark.
_base_ = [
    '../_base_/models/cascade_maskrcnn_fan_hybrid_fpn.py',
    './_base_/toy_coco.py',
]

num_classes = 4
head_norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.1),
    # toy-sized heads as in ./maskrcnn_fan_t_hybrid_toy_coco.py: 128-wide FPN and box convs, 256-wide box FC,
    # two mask convs (a few objects of four shapes per image; the heads are most of a CPU training step)
    neck=dict(in_channels=[128, 256, 192, 768], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        mask_roi_extractor=dict(out_channels=128),
        # the three box heads of the base with 4 classes (a list replaces the base's list)
        bbox_head=[
            dict(type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=128,
                 conv_out_channels=128, fc_out_channels=256, roi_feat_size=7,
                 num_classes=num_classes,
                 bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                                 target_stds=stds),
                 reg_class_agnostic=False, reg_decoded_bbox=True, norm_cfg=head_norm_cfg,
                 loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                 loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ],
        mask_head=dict(in_channels=128, conv_out_channels=128, num_convs=2, num_classes=num_classes)),
    # a handful of objects per image: far fewer proposals and sampled RoIs than COCO needs
    # (the three stages of the base with 128 instead of 512 RoIs per image)
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=[
            dict(assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou,
                               min_pos_iou=iou, match_low_quality=False, ignore_iof_thr=-1),
                 sampler=dict(type='RandomSampler', num=128, pos_fraction=0.25, neg_pos_ub=-1,
                              add_gt_as_proposals=True),
                 mask_size=28, pos_weight=-1, debug=False)
            for iou in (0.5, 0.6, 0.7)
        ]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))
