# Control for the from-scratch check (docs/from_scratch.md): mmseg's ResNet-50 (v1c) UPerNet with the
# data, schedule and optimiser of ./upernet_fan_t_hybrid_toy_cityscapes.py and its 128-wide decoder,
# trained from scratch (no ImageNet weights). `python tools/analysis/train_from_scratch.py seg` runs it
# beside the FAN segmentation toys.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py',
    './_base_/toy_cityscapes.py',
]

model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(128, 128)),
    decode_head=dict(channels=128),
    auxiliary_head=dict(channels=64),
    test_cfg=dict(mode='whole'))
