# Schedule (no model, no data) shared by the Cityscapes and ADE20K recipes: AdamW lr 6e-5, betas
# (0.9, 0.999), weight decay 0.01, no weight decay on normalisation layers (by type) and position
# parameters (fan_mm/engine/optim_constructor.py); linear warmup over 1500 iterations from 1e-6, then
# poly decay (power 1) to 0 at 160k iterations. The dataset recipes set the evaluation / checkpoint
# interval, the batch size and any head lr multiplier.
_base_ = [
    'mmseg::_base_/default_runtime.py',
    '../fan_mm_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # no decay on norms and the keys below, groups of equal settings merged
    # (fan_mm/engine/optim_constructor.py); fused: torch's one-kernel AdamW (same update)
    constructor='NoDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01, fused=True),
    paramwise_cfg=dict(
        no_decay_norms=True,
        no_decay_keys=['pos_embed', 'cls_token', 'relative_position_bias_table']))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000)
