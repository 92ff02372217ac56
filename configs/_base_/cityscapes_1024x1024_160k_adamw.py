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
    './schedules/segmentation_adamw_poly_160k.py',
]

# the SegFormer head lr x10 (decode_head and auxiliary_head); a custom key cannot shadow the
# no-decay rules of NoDecayOptimWrapperConstructor
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))
train_cfg = dict(val_interval=4000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000))

train_dataloader = dict(batch_size=1, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

# 8 GPUs x 1 image; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=8)
