# maskrcnn_fan_s_hybrid_3x_coco.py in fp16 mixed precision (mmengine's AmpOptimWrapper, dynamic loss
# scaling). fp16, not bf16: mmcv 2.1.0's RoIAlign has no bf16 CUDA kernel.
# On a GPU the backbone's blocks run as compiled CUDA graphs (the model base's compile_blocks; off with
# --no-compile); fp32 is markedly slower (figures: docs/benchmarks.md, "Mask R-CNN").
# Same as `python tools/train.py configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py --amp`; pretrained weights as there
# (fan_hybrid_small.pth.tar).
_base_ = './maskrcnn_fan_s_hybrid_3x_coco.py'

optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
