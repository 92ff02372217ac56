# Model (no data, no schedule): SETR-Naive on a FAN-ViT backbone (small; the leaves pick the
# size and the checkpoint). The FAN paper (App. A.2) pairs FAN-ViT with SETR's decoders.
# FAN-ViT gives four same-scale (1/16) maps: the tokens after FAN blocks 4, 7, 11 and after
# class attention (the official segmentation fan_small_12_p16_224 taps; same relative depths
# for base). Naive head on the last map: LayerNorm, 1x1 conv + BN + ReLU, bilinear x4,
# classifier (the logits are then resized to the labels); auxiliary heads of the same form on
# the other three maps (loss weight 0.4), as mmseg's SETR-Naive.
_base_ = 'mmseg::_base_/models/setr_naive.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='FANViT',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile)
        compile_blocks=dict(mode='reduce-overhead'),
        arch='small',
        mode='single_scale',
        drop_path_rate=0.1),
    # FAN-ViT width: 192 / 384 / 448 / 480 for T / S / B / L
    decode_head=dict(in_channels=384, in_index=3, num_convs=1, up_scale=4, kernel_size=1),
    auxiliary_head=[
        dict(type='SETRUPHead', in_channels=384, channels=256, in_index=i, num_classes=19,
             dropout_ratio=0, norm_cfg=norm_cfg, num_convs=1, up_scale=4, kernel_size=1,
             align_corners=False,
             loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4))
        for i in (0, 1, 2)
    ])

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
