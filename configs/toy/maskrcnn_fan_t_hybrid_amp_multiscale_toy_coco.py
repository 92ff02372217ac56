# A GPU check of the fan_mm detection configs' fast path at toy size: the toy Mask R-CNN in fp16 with nine
# input scales, so that training meets a new input size now and then, as on COCO; on a GPU the backbone's
# blocks are compiled for dynamic shapes and replayed as CUDA graphs, one graph per input size (the model
# base's compile_blocks). Needs a CUDA GPU (fp16 AMP). Not a benchmark: the first iterations compile and record.
_base_ = './maskrcnn_fan_t_hybrid_toy_coco.py'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # short sides 160..416 at the toy images' 4:3 aspect
    dict(type='RandomChoiceResize', scales=[(s * 4 // 3, s) for s in range(160, 417, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
