# A GPU check of ../fan/maskrcnn_fan_s_hybrid_amp_cudagraph_3x_coco.py at toy size: the toy Mask R-CNN in
# fp16 with CUDA graphs in the backbone (compile_blocks, dynamic shapes) and nine input scales, so that
# training meets a new input size (a new CUDA graph) now and then, as on COCO. Needs a CUDA GPU (fp16 AMP,
# CUDA graphs). Not a benchmark: the first iterations compile and record.
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
model = dict(backbone=dict(compile_blocks=dict(mode='reduce-overhead', dynamic=True)))
