# Recipe (no model): COCO instance segmentation, 3x schedule with multi-scale training -- the
# recipe of the official FAN detection configs (detection/configs/*_3x_mstrain_fp16.py) and
# of Swin's Mask R-CNN 3x: DETR-style augmentation (flip, then either a random short side in
# 480..800 step 32, or a random resize to {400, 500, 600} + random crop 384..600 + the same
# multi-scale resize), 36 epochs with lr steps after 27 and 33; optimiser and batch as the 1x
# recipe (AdamW lr 1e-4, wd 0.05, 8 GPUs x 2 images).
_base_ = './coco_instance_adamw_1x.py'

multi_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
                (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
            [dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)],
                  keep_ratio=True),
             dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600),
                  allow_negative_crop=True),
             dict(type='RandomChoiceResize', scales=multi_scales, keep_ratio=True)],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33],
         gamma=0.1),
]
