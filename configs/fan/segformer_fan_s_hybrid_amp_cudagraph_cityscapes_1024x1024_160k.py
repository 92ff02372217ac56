# segformer_fan_s_hybrid_amp_cityscapes_1024x1024_160k.py (bf16) with CUDA graphs: every backbone block is
# compiled with torch.compile(mode='reduce-overhead') for static shapes (the training crops and the
# slide-inference windows are all 1024x1024). At 2 images per GPU the eager backbone is bound by kernel
# launches on the CPU; the graphs replay each block's kernels without them (docs/benchmarks.md). The first
# iterations compile and capture (minutes), and each new input shape compiles again. On an H100 at
# 2x1024x1024 a training iteration of the whole segmentor takes 0.58x the time of the bf16 config, and
# inference 0.56x (docs/benchmarks.md, session 4). Checked with mmengine training and validation on the
# toy dataset on one H100, not trained on Cityscapes here, not run on several GPUs. Pretrained weights as
# in the fp32 config (fan_hybrid_small.pth.tar).
_base_ = './segformer_fan_s_hybrid_amp_cityscapes_1024x1024_160k.py'

model = dict(backbone=dict(compile_blocks=dict(mode='reduce-overhead', dynamic=False)))
