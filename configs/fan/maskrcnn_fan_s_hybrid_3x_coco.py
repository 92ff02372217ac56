# Mask R-CNN with a FAN-S-Hybrid backbone, COCO, 3x schedule with multi-scale training.
# Recipe of the official FAN detection code (detection/configs/*_3x_mstrain_fp16.py), on
# mmdet 3.x: AdamW lr 1e-4, wd 0.05 with no decay on norms and position parameters,
# 36 epochs with steps at 27 and 33, DETR-style multi-scale augmentation, 16 images per
# batch (8 GPUs x 2).
#
# Pretrained weights: the official ImageNet-1K checkpoint `fan_hybrid_small.pth.tar`
# (NVlabs/FAN release v1.0.0), put at pretrained/fan_hybrid_small.pth.tar, or point
# `model.backbone.init_cfg.checkpoint` elsewhere with --cfg-options. Nothing is downloaded.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fan_mm'], allow_failed_imports=False)

pretrained = 'pretrained/fan_hybrid_small.pth.tar'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FANHybrid',
        arch='small',
        # strides 4/8/16/32: ConvNeXt stages, FAN tokens, and the official detection
        # backbone's learned stride-2 conv (768 channels) for 1/32
        out_indices=(0, 1, 2, 3),
        feat_downsample=True,
        drop_path_rate=0.3,
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 384, 768]))

# augmentation of DETR / the official FAN detection configs
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize',
                  scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
                          (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
                          (800, 1333)],
                  keep_ratio=True)],
            [dict(type='RandomChoiceResize',
                  scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
             dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                  allow_negative_crop=True),
             dict(type='RandomChoiceResize',
                  scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333),
                          (640, 1333), (672, 1333), (704, 1333), (736, 1333), (768, 1333),
                          (800, 1333)],
                  keep_ratio=True)],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999),
                   weight_decay=0.05),
    # as the official configs: no weight decay on norms ('norm' matches every LayerNorm,
    # BatchNorm and LayerNorm2d of the FAN blocks and the ConvNeXt stem, as in the
    # official key names) and position parameters
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'norm': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
        }),
    clip_grad=None)

# 8 GPUs x 2 images; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=16)
