# Model (no data, no schedule): SETR-MLA on a FAN-ViT backbone (small; the leaves pick the size
# and the checkpoint). The FAN paper (App. A.2) pairs FAN-ViT with SETR's decoders. FAN-ViT
# gives four same-scale (1/16) maps: the tokens after FAN blocks 4, 7, 11 and after class
# attention (the official segmentation fan_small_12_p16_224 taps; same relative depths for
# base). MLA: mmseg's MLANeck (per-level LayerNorm + 1x1 conv to 256, top-down aggregation,
# 3x3 convs) and SETRMLAHead (128 channels per level, x4 upsampling); FCN auxiliary heads
# (classifier only) on each of the four aggregated maps (loss weight 0.4).
_base_ = 'mmseg::_base_/models/setr_mla.py'

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
    # FAN-ViT width: 192 / 384 / 448 / 480 for T / S / B / L; the heads read the neck's 256
    neck=dict(in_channels=[384, 384, 384, 384]))

# The official FAN dense backbones use SyncBatchNorm in their BatchNorm layers (the depthwise convs of the
# FAN blocks' MLP, ConvPatchEmbed). mmengine converts every BatchNorm of the model to torch's SyncBatchNorm
# when the run is distributed, and keeps plain BatchNorm in a single process.
sync_bn = 'torch'
