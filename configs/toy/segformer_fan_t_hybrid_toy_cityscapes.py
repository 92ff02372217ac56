# SegFormer on FAN-T-Hybrid, trained on fan_mm's generated Cityscapes-layout toy dataset
# (256x128 street scenes; `python tools/make_toy_dataset.py cityscapes data/toy_cityscapes`).
# Same model and optimiser as ../fan/segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py,
# shrunk to run on a CPU in minutes (./_base_/toy_cityscapes.py). Used by the tests; not a
# benchmark.
_base_ = [
    '../_base_/models/segformer_fan_hybrid.py',
    './_base_/toy_cityscapes.py',
]

model = dict(
    data_preprocessor=dict(size=(128, 128)),
    backbone=dict(arch='tiny'),
    decode_head=dict(in_channels=[128, 256, 192, 192], channels=128),
    test_cfg=dict(mode='whole'))
