# maskrcnn_fan_s_hybrid_amp_3x_coco.py (fp16) with CUDA graphs in the backbone: every backbone block is
# compiled with torch.compile(mode='reduce-overhead'). At 2 images per GPU the eager FAN backbone is
# bound by kernel launches on the CPU; the graphs replay each block's kernels without them. The neck and
# the heads stay eager.
#
# Detection inputs change size (multi-scale training, one padded size per batch), so the blocks are
# compiled for dynamic shapes (dynamic=True): a handful of compilations (block widths, input dtypes,
# training / validation), and one CUDA graph recorded per new input size, so the first iterations and
# each new size are slow (torch warns past 50 sizes).
#
# Measured on an H100 at 2x800x1344, fp16, one process (docs/benchmarks.md, session 4): a training
# iteration takes 0.89x the time of mmdet's eager Mask R-CNN Swin-T config, inference 0.79x (this
# recipe in eager mode: 1.20x / 1.57x). With CUDA graphs in both backbones the ratios are 1.28x / 0.94x.
# Checked with mmengine training over nine input scales, validation and tools/test.py on the toy dataset
# on one H100; not trained on COCO here, not run on several GPUs. Pretrained weights as in the fp32 config
# (fan_hybrid_small.pth.tar).
_base_ = './maskrcnn_fan_s_hybrid_amp_3x_coco.py'

model = dict(backbone=dict(compile_blocks=dict(mode='reduce-overhead', dynamic=True)))
