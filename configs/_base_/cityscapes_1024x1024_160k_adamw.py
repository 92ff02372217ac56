# Recipe (no model): Cityscapes 1024x1024 crops, 160k iterations, AdamW -- the SegFormer
# training setting that the official FAN segmentation configs use
# (segmentation/local_configs/fan/fan_hybrid/*.1024x1024.city.160k.py) and that the FAN paper
# (App. A.2) also uses for FAN-ViT with SETR heads:
#   AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01; head lr x10; no weight decay on
#   normalisation layers and position parameters; linear warmup 1500 iterations from 1e-6,
#   then poly decay (power 1) to 0 at 160k; 8 GPUs x 1 image; mIoU and a checkpoint every
#   4000 iterations.
# Leaves add the model and its data_preprocessor / slide-inference settings
# (model.test_cfg: slide, crop 1024, stride 768).
_base_ = [
    'mmseg::_base_/datasets/cityscapes_1024x1024.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['fan_mm'], allow_failed_imports=False)

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    # mmengine's constructor plus zero decay on every norm layer (by type) and on the names
    # below, which a custom key (here 'head') cannot shadow; see fan_mm/utils/optim_constructor.py
    constructor='NoDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={'head': dict(lr_mult=10.)},  # decode_head and auxiliary_head
        no_decay_norms=True,
        no_decay_keys=['pos_embed', 'cls_token', 'relative_position_bias_table']))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=4000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000))

train_dataloader = dict(batch_size=1, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

# 8 GPUs x 1 image; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=8)
