# Model (no data, no schedule): Mask R-CNN + FPN on a FAN-Swin backbone (tiny; the leaves pick
# the checkpoint): the four Swin stages (strides 4 to 32, channels 96, 192, 384, 768), each
# with its own output LayerNorm, as mmdet's Swin Mask R-CNN; drop path 0.2 (linear).
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='FANSwin',
        # on a GPU each trunk block is compiled and replayed as CUDA graphs (eager on CPU; off: --no-compile);
        # dynamic shapes: detection batches change size
        compile_blocks=dict(mode='reduce-overhead', dynamic=True),
        arch='tiny',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.2,
        with_cp=False),
    neck=dict(in_channels=[96, 192, 384, 768]))
