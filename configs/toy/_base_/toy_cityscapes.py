# Recipe (no model) for the toy segmentation configs: fan_mm's generated Cityscapes-layout toy
# dataset (256x128 street scenes; `python tools/make_toy_dataset.py cityscapes
# data/toy_cityscapes`), 128x128 crops, 120 iterations of 4 images, the AdamW optimiser of the
# Cityscapes recipe (head lr x10) at lr 6e-4. Leaves set model.test_cfg (whole-image inference)
# and the 128x128 data_preprocessor size. Runs on a CPU in minutes; not a benchmark.
_base_ = '../../_base_/cityscapes_1024x1024_160k_adamw.py'

data_root = 'data/toy_cityscapes/'
crop_size = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 120
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=10, end=max_iters, by_epoch=False),
]
optim_wrapper = dict(optimizer=dict(lr=6e-4))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=60, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=4)
