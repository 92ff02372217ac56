# Model (no data, no schedule): Cascade Mask R-CNN + FPN on a FAN-Hybrid backbone (small; the
# leaves pick the size and the checkpoint), with the box heads of the official FAN detection
# configs (detection/configs/cascade_mask_fan_*_fpn_3x_mstrain_fp16.py): per stage a
# ConvFCBBoxHead with 4 shared 3x3 convs + 1 fc (1024), SyncBN, GIoU loss (weight 10) on
# decoded boxes, target stds 0.1/0.2, 0.05/0.1, 0.033/0.067; stage loss weights 1, 0.5, 0.25.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

head_norm_cfg = dict(type='SyncBN', requires_grad=True)  # BN when not distributed (mmengine)


def _box_head(stds):
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.],
                        target_stds=stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=head_norm_cfg,
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    backbone=dict(
        _delete_=True,
        type='FANHybrid',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile);
        # dynamic shapes: detection batches change size
        compile_blocks=dict(mode='reduce-overhead', dynamic=True),
        arch='small',
        out_indices=(0, 1, 2, 3),
        feat_downsample=True,
        drop_path_rate=0.3,
        with_cp=False),
    # FAN-Hybrid channels: 128, 256, C (192 / 384 / 448 / 480 for T / S / B / L), 768
    neck=dict(in_channels=[128, 256, 384, 768]),
    roi_head=dict(bbox_head=[
        _box_head([0.1, 0.1, 0.2, 0.2]),
        _box_head([0.05, 0.05, 0.1, 0.1]),
        _box_head([0.033, 0.033, 0.067, 0.067]),
    ]))
del _box_head

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
