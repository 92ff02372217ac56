# Model (no data, no schedule): UPerNet (+ FCN auxiliary head) on an LV-ViT backbone (S; the
# leaves pick the size and the checkpoint), the design of the official LV-ViT segmentation
# code (TokenLabeling seg/configs/lvvit/upernet_lvvit_*_512x512_160k_ade20k.py,
# seg/mmseg/models/backbones/vit.py with use_side_layer=True): four tapped blocks (S: 6, 9, 12,
# 15) through "side layers" -- 4x and 2x transposed convs, a 1x1 conv, and a 1x1 conv to 2048
# channels -- give maps at strides 4, 8, 16, 16 with D, D, D, 2048 channels (D = 384 / 512 /
# 768 for S / M / L); UPerHead with pool scales (1, 2, 3, 6); FCN auxiliary head on the third
# map (loss weight 0.4); SyncBN in the side layers and the heads.
_base_ = 'mmseg::_base_/models/upernet_swin.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='LVViT',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile)
        compile_blocks=dict(mode='reduce-overhead'),
        arch='small',
        img_size=512,  # the position embedding is resized once, to the 512 crops' grid
        side_layers=True,
        out_channels=2048,
        norm_cfg=norm_cfg,
        drop_path_rate=0.1),
    decode_head=dict(
        in_channels=[384, 384, 384, 2048],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=256,
        dropout_ratio=0.1,
        num_classes=150),
    auxiliary_head=dict(in_channels=384, in_index=2, channels=256, num_classes=150))
