# Model (no data, no schedule): UPerNet (+ FCN auxiliary head on stage 3, loss weight 0.4) on a
# FAN-Swin backbone (tiny; the leaves pick the size and the checkpoint): the four Swin stages
# (strides 4 to 32, channels 96, 192, 384, 768 for tiny / small), each with its own output
# LayerNorm, as mmseg's Swin UPerNet. Drop path 0.3 (linear over the blocks).
_base_ = 'mmseg::_base_/models/upernet_swin.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='FANSwin',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile)
        compile_blocks=dict(mode='reduce-overhead'),
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.3),
    decode_head=dict(in_channels=[96, 192, 384, 768], channels=512, num_classes=19),
    auxiliary_head=dict(in_channels=384, in_index=2, num_classes=19))
