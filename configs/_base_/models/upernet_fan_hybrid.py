# Model (no data, no schedule): UPerNet (+ FCN auxiliary head on the 1/16 map, loss weight
# 0.4) on a FAN-Hybrid backbone (small; the leaves pick the size, the checkpoint and the
# number of classes). The papers have no FAN-Hybrid UPerNet; this uses the backbone's pyramid
# layout (ConvNeXt stages at 1/4 and 1/8, FAN tokens at 1/16, the class-attention tokens
# through the learned stride-2 conv at 1/32 with 768 channels, as for FPN), so the pyramid
# pooling module sees a 1/32 map as with Swin / ConvNeXt UPerNets. Drop path 0.1 (uniform).
_base_ = 'mmseg::_base_/models/upernet_swin.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='FANHybrid',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile)
        compile_blocks=dict(mode='reduce-overhead'),
        arch='small',
        out_indices=(0, 1, 2, 3),
        feat_downsample=True,
        drop_path_rate=0.1),
    # FAN-Hybrid channels: 128, 256, C (192 / 384 / 448 / 480 for T / S / B / L), 768
    decode_head=dict(in_channels=[128, 256, 384, 768], channels=512, num_classes=19),
    auxiliary_head=dict(in_channels=384, in_index=2, num_classes=19))

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
