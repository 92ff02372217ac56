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
# Training iterations and inference take less time than those of mmdet's eager Mask R-CNN Swin-T config
# (this recipe in eager mode takes more); with CUDA graphs in both backbones FAN-S-Hybrid is slower in
# training, as its backbone does more GPU work (figures: docs/benchmarks.md, "Mask R-CNN").
# Verified by mmengine training over nine input scales, validation and tools/test.py on the toy dataset on
# one GPU; not yet trained on COCO nor run on several GPUs. Pretrained weights as in the fp32 config
# (fan_hybrid_small.pth.tar).
_base_ = './maskrcnn_fan_s_hybrid_amp_3x_coco.py'

model = dict(backbone=dict(compile_blocks=dict(mode='reduce-overhead', dynamic=True)))
