# UPerNet on FAN-T-Hybrid (pyramid layout 1/4..1/32), trained on fan_mm's generated
# Cityscapes-layout toy dataset (`python tools/make_toy_dataset.py cityscapes
# data/toy_cityscapes`). Same model and optimiser as
# ../fan/upernet_fan_s_hybrid_cityscapes_1024x1024_160k.py with the tiny backbone from scratch
# and a 128-wide decoder, shrunk to run on a CPU (./_base_/toy_cityscapes.py). Used by the
# tests; not a benchmark.
_base_ = [
    '../_base_/models/upernet_fan_hybrid.py',
    './_base_/toy_cityscapes.py',
]

model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(arch='tiny'),
    decode_head=dict(in_channels=[128, 256, 192, 768], channels=128),
    auxiliary_head=dict(in_channels=192, channels=64),
    test_cfg=dict(mode='whole'))
