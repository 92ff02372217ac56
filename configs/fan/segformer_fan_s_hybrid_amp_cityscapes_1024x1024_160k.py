# segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py in bf16 mixed precision (mmengine's
# AmpOptimWrapper with dtype=bfloat16: no loss scaling needed). The segmentors use no mmcv op without a
# bf16 kernel; the detectors do (RoIAlign), so their AMP configs use fp16. Pretrained weights as in the
# fp32 config (fan_hybrid_small.pth.tar).
_base_ = './segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py'

optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
