# Model (no data, no schedule): SegFormer head on a FAN-Hybrid backbone (small; the leaves pick
# the size and the checkpoint), as the official FAN segmentation configs
# (segmentation/local_configs/fan/fan_hybrid/*.1024x1024.city.160k.py): the backbone's four
# maps -- ConvNeXt stages at 1/4 and 1/8, the tokens of the last FAN block (block 18 of 22 for
# large) and the tokens after class attention, both at 1/16 -- into an all-MLP head with a
# 768-wide decoder, dropout 0.1. No drop path (the official segmentation backbone ignores it).
#
# mmseg's SegformerHead differs from the official head in one detail: each level is projected
# by a 1x1 conv + BN + ReLU, the official head uses a plain linear layer.
_base_ = 'mmseg::_base_/models/segformer_mit-b0.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='FANHybrid',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile)
        compile_blocks=dict(mode='reduce-overhead'),
        arch='small',
        out_indices=(0, 1, 2, 3),
        feat_downsample=False,  # strides 4/8/16/16, the official segmentation layout
        drop_path_rate=0.),
    decode_head=dict(
        # FAN-Hybrid channels: 128, 256, C, C (C = 192 / 384 / 448 / 480 for T / S / B / L)
        in_channels=[128, 256, 384, 384],
        in_index=[0, 1, 2, 3],
        channels=768,
        dropout_ratio=0.1,
        num_classes=19))

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
