# The built-in default: FAN-T-Hybrid Mask R-CNN on fan_mm's generated COCO-format toy dataset
# (4 classes of shapes on photo backgrounds, 256x192 images; make it with
# `python tools/make_toy_dataset.py coco data/toy_coco`). Same model and optimiser as
# ../fan/maskrcnn_fan_s_hybrid_3x_coco.py, shrunk to run on a CPU in minutes: tiny backbone
# from scratch, single-scale 256x192 input, 200 iterations of 2 images (./_base_/toy_coco.py).
# Used by tools/demo.py and the tests; not a benchmark.
_base_ = [
    '../_base_/models/maskrcnn_fan_hybrid_fpn.py',
    './_base_/toy_coco.py',
]

model = dict(
    # out_norm: a LayerNorm on each backbone output. From scratch, without it the unnormalised residual
    # streams grow, the FPN outputs with them, and the RoI classifier diverges (docs/from_scratch.md)
    backbone=dict(arch='tiny', drop_path_rate=0.1, out_norm=True),
    # toy-sized heads (half the FPN width, a quarter of the box FC width, two mask convs):
    # a few objects of four shapes per image need far less capacity, and the heads are most of a
    # CPU training step
    neck=dict(in_channels=[128, 256, 192, 768], out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=4),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(in_channels=128, conv_out_channels=128, num_convs=2, num_classes=4)),
    # a handful of objects per image: far fewer proposals and sampled RoIs than COCO needs,
    # which is most of the CPU time of a Mask R-CNN step
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200),
                   rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))
