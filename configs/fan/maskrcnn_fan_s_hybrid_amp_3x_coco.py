# maskrcnn_fan_s_hybrid_3x_coco.py in fp16 mixed precision (mmengine's AmpOptimWrapper, dynamic loss
# scaling). fp16, not bf16: mmcv 2.1.0's RoIAlign has no bf16 CUDA kernel.
# Eager, a training iteration takes longer than mmdet's Mask R-CNN Swin-T in the same precision: the step
# is bound by CPU-side kernel launches, and FAN's backbone launches more kernels. fp32 is markedly slower.
# maskrcnn_fan_s_hybrid_amp_cudagraph_3x_coco.py adds CUDA graphs to the backbone and is then faster than
# Swin-T (figures: docs/benchmarks.md, "Mask R-CNN").
# Same as `python tools/train.py configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py --amp`; pretrained weights as there
# (fan_hybrid_small.pth.tar).
_base_ = './maskrcnn_fan_s_hybrid_3x_coco.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
