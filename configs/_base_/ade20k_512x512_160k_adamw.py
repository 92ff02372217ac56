# Recipe (no model): ADE20K 512x512 crops, 160k iterations, AdamW -- the recipe of the official
# LV-ViT UPerNet configs (TokenLabeling seg/configs/lvvit/upernet_lvvit_*_512x512_160k_ade20k.py):
#   AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01; linear warmup 1500 iterations from
#   1e-6, then poly decay (power 1) to 0 at 160k; 4 images per GPU (LV-ViT-L: 2), 8 GPUs
#   assumed (the official repository does not state the GPU count); mIoU and a checkpoint
#   every 8000 iterations; slide inference, crop 512, stride 341 (set in the leaves);
#   multi-scale testing (`tools/test.py --tta`) as the official mmseg 0.x `--aug-test` does it.
# Departures from the official configs, kept for every config of this project: no weight
# decay on normalisation layers and position parameters (the official LV-ViT configs have no
# paramwise_cfg at all), and no head lr multiplier (the official ones have none either).
_base_ = [
    'mmseg::_base_/datasets/ade20k.py',
    './schedules/segmentation_adamw_poly_160k.py',
]

train_cfg = dict(val_interval=8000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000))

train_dataloader = dict(batch_size=4, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

# 8 GPUs x 4 images; --auto-scale-lr rescales lr for another total batch size
auto_scale_lr = dict(enable=False, base_batch_size=32)

# Multi-scale + flip testing (`tools/test.py --tta`) with the protocol of the official configs'
# mmseg 0.x `tools/test.py --aug-test`: MultiScaleFlipAug over img_scale (2048, 512) with ratios
# 0.5-1.75 resizes each image, keeping its aspect ratio, to fit (2048 * r, 512 * r), and adds a
# horizontal flip of every scale. mmseg 1.x's ADE20K `tta_pipeline` resizes the raw image by r
# instead (`Resize(scale_factor=r)`); the two give the same scales only for an image that already
# fits 2048x512 exactly (short side 512 and long side at most 2048, or long side 2048 and short
# side at most 512).
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='Resize', scale=(int(2048 * r), int(512 * r)), keep_ratio=True) for r in img_ratios],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
