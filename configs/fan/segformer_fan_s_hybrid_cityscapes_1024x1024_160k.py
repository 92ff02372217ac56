# SegFormer head on a FAN-S-Hybrid backbone, Cityscapes 1024x1024 crops, 160k iterations.
# Recipe of the official FAN segmentation code
# (segmentation/local_configs/fan/fan_hybrid/fan_hybrid_small.1024x1024.city.160k.py), on
# mmseg 1.x: AdamW lr 6e-5, wd 0.01, no decay on norms and position parameters, head
# lr x10, poly decay after a 1500-iteration linear warmup, slide inference 1024/768,
# 8 GPUs x 1 image.
#
# The head is mmseg's SegformerHead with the official decoder width (768). It differs from
# the official head in one detail: mmseg projects each level with a 1x1 conv + BN + ReLU,
# the official head with a plain linear layer.
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_small.pth.tar`
# (NVlabs/FAN release v1.0.0), at pretrained/fan_hybrid_small.pth.tar. Nothing is
# downloaded.
_base_ = [
    'mmseg::_base_/models/segformer_mit-b0.py',
    'mmseg::_base_/datasets/cityscapes_1024x1024.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['fan_mm'], allow_failed_imports=False)

crop_size = (1024, 1024)
data_preprocessor = dict(size=crop_size)
pretrained = 'pretrained/fan_hybrid_small.pth.tar'
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='FANHybrid',
        arch='small',
        # the official segmentation outputs: ConvNeXt stages (1/4, 1/8), the FAN tokens of
        # the last block and the tokens after class attention (both 1/16)
        out_indices=(0, 1, 2, 3),
        feat_downsample=False,
        drop_path_rate=0.,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(
        in_channels=[128, 256, 384, 384],
        in_index=[0, 1, 2, 3],
        channels=768,
        dropout_ratio=0.1,
        num_classes=19),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(768, 768)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'pos_embed': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
            'head': dict(lr_mult=10.),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=160000, val_interval=4000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000))

train_dataloader = dict(batch_size=1, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

# 8 GPUs x 1 image
auto_scale_lr = dict(enable=False, base_batch_size=8)
