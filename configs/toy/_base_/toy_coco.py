# Recipe (no model) for the toy detection configs: fan_mm's generated COCO-format toy dataset
# (4 classes of shapes on photo backgrounds, 256x192 images; make it with
# `python tools/make_toy_dataset.py coco data/toy_coco`), single-scale 256x192 input,
# 200 iterations of 2 images, the AdamW optimiser of the COCO recipes (lr 1e-4) with gradient
# clipping. Runs on a CPU in minutes; not a benchmark.
_base_ = '../../_base_/coco_instance_adamw_ms_3x.py'

data_root = 'data/toy_coco/'
metainfo = dict(
    classes=('disc', 'square', 'triangle', 'ring'),
    palette=[(230, 45, 40), (40, 175, 60), (40, 90, 235), (245, 200, 30)])
image_scale = (256, 192)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_iters = 200
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[170],
         gamma=0.1),
]
# the recipe's lr (1e-4), with gradient clipping for the first iterations. From scratch, FAN-Hybrid needs
# its output norms (out_norm=True in the FAN leaf) to train at this lr or 2e-4: without them the FPN
# outputs grow without bound and the run diverges (docs/from_scratch.md)
optim_wrapper = dict(clip_grad=dict(max_norm=1.0, norm_type=2))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=100, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=2)
