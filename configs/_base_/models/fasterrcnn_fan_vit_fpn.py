# Model (no data, no schedule): Faster R-CNN + FPN on a FAN-ViT backbone (small; the leaves pick
# the size and the checkpoint), the detector the FAN paper pairs with FAN-ViT (App. A.2). FAN-ViT
# is a plain stride-16 trunk; ViTDet's simple feature pyramid turns its class-attention output
# into strides 4, 8, 16, 32 with C/4, C/2, C, C channels (C = 384 for small), each LayerNorm-ed
# (FANViT mode='pyramid', see fan_mm/models/backbones/fan.py). Drop path 0.1 (uniform), as the
# FAN-ViT SETR configs; the paper gives none.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='FANViT',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile);
        # dynamic shapes: detection batches change size
        compile_blocks=dict(mode='reduce-overhead', dynamic=True),
        arch='small',
        mode='pyramid',
        drop_path_rate=0.1,
        with_cp=False),
    # FAN-ViT pyramid channels: C/4, C/2, C, C
    neck=dict(in_channels=[96, 192, 384, 384]))

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
