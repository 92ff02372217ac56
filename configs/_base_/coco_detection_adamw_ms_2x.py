# Recipe (no model): COCO object detection (boxes), 2x schedule (24 epochs, lr steps after 16 and
# 22) with multi-scale training -- the FAN paper's setting for FAN-ViT with Faster R-CNN (App. A.2:
# "2x multi-scale training", training resolution "randomly selected from 640x640 to 896x896", a
# "deterministic image resolution of size 896x896 for testing"). Our reading of it: each training
# image is resized, keeping its aspect ratio, to fit a square of random side 640, 672, ..., 896
# (steps of 32, as the FPN strides want), and flipped with probability 0.5; each test image is
# resized to fit 896x896. The paper names no optimiser for this setting: AdamW lr 1e-4, wd 0.05
# (no decay on normalisation layers and position parameters), linear warmup over 500 iterations
# from 0.001x, 8 GPUs x 2 images, as the other COCO recipes of this project.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_2x.py',
    'mmdet::_base_/default_runtime.py',
    './fan_mm_runtime.py',
]

train_scales = [(s, s) for s in range(640, 897, 32)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize', scales=train_scales, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(896, 896), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[16, 22], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    # zero decay on every norm layer (by type) and on the names below, see
    # fan_mm/engine/optim_constructor.py, which also merges the parameter groups of equal settings.
    # Mixed precision: tools/train.py --amp (fp16). fused: torch's one-kernel AdamW (same update)
    constructor='NoDecayOptimWrapperConstructor',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05,
                   fused=True),
    paramwise_cfg=dict(
        no_decay_norms=True,
        no_decay_keys=['pos_embed', 'cls_token', 'relative_position_bias_table', 'absolute_pos_embed']))

# 8 GPUs x 2 images; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=16)
