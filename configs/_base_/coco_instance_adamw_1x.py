# Recipe (no model): COCO instance segmentation, 1x schedule (12 epochs, lr steps after 8 and
# 11), single-scale 1333x800 training, AdamW lr 1e-4, weight decay 0.05 with no decay on
# normalisation layers and position parameters, linear warmup 500 iterations from 0.001x
# (the warmup of the official FAN detection configs), 8 GPUs x 2 images.
_base_ = [
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    './fan_mm_runtime.py',
]

train_dataloader = dict(batch_size=2)

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    # zero decay on every norm layer (by type) and on the names below, see
    # fan_mm/engine/optim_constructor.py, which also merges the parameter groups of equal settings.
    # Mixed precision: tools/train.py --amp (fp16; mmcv's RoIAlign has no bf16 kernel).
    # fused: torch's one-kernel AdamW (same update; no host sync in the fp16 loss scaler's step)
    constructor='NoDecayOptimWrapperConstructor',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05, fused=True),
    paramwise_cfg=dict(
        no_decay_norms=True,
        no_decay_keys=['pos_embed', 'cls_token', 'relative_position_bias_table',
                       'absolute_pos_embed']))

# 8 GPUs x 2 images; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=16)
