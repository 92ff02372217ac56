# segformer_fan_s_hybrid_amp_cityscapes_1024x1024_160k.py (bf16) with CUDA graphs: every backbone block is
# compiled with torch.compile(mode='reduce-overhead') for static shapes (the training crops and the
# slide-inference windows are all 1024x1024). At 2 images per GPU the eager backbone is bound by kernel
# launches on the CPU; the graphs replay each block's kernels without them, so training iterations and
# inference of the whole segmentor take markedly less time than with the bf16 config (figures:
# docs/benchmarks.md, "SegFormer FAN-S-Hybrid"). The first iterations compile and capture (minutes), and
# each new input shape compiles again. Verified by mmengine training and validation on the toy dataset on
# one GPU; not yet trained on Cityscapes nor run on several GPUs. Pretrained weights as in the fp32 config
# (fan_hybrid_small.pth.tar).
_base_ = './segformer_fan_s_hybrid_amp_cityscapes_1024x1024_160k.py'

model = dict(backbone=dict(compile_blocks=dict(mode='reduce-overhead', dynamic=False)))
