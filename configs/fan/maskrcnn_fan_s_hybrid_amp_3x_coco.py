# maskrcnn_fan_s_hybrid_3x_coco.py in fp16 mixed precision (mmengine's AmpOptimWrapper, dynamic loss
# scaling). fp16, not bf16: mmcv 2.1.0's RoIAlign has no bf16 CUDA kernel.
# Measured on an H100 (docs/benchmarks.md): a Mask R-CNN FAN-S-Hybrid training iteration at 2x800x1344
# takes 1.11x to 1.34x the time of mmdet's Mask R-CNN Swin-T in the same precision (the eager step is
# bound by CPU-side kernel launches and moves between processes); fp32 is about 1.5x slower.
# maskrcnn_fan_s_hybrid_amp_cudagraph_3x_coco.py adds CUDA graphs to the backbone (0.89x).
# Same as `python tools/train.py configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py --amp`; pretrained weights as there
# (fan_hybrid_small.pth.tar).
_base_ = './maskrcnn_fan_s_hybrid_3x_coco.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
