# Model (no data, no schedule): Mask R-CNN + FPN on a FAN-Hybrid backbone (small; the leaves
# pick the size and the checkpoint). Backbone as the official FAN detection code
# (detection/models/fan.py): ConvNeXt stages at 1/4 and 1/8, FAN tokens at 1/16 and, for 1/32,
# the class-attention tokens through a learned stride-2 conv (768 channels, not pretrained);
# uniform drop path 0.3.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

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
    neck=dict(in_channels=[128, 256, 384, 768]))

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
