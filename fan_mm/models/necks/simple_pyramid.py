"""ViTDet's simple feature pyramid, the neck FANViT builds in and a config may use on its own."""
from typing import List, Sequence

import torch
import torch.nn as nn
from timm.layers import LayerNorm2d

from ...registry import register_model


@register_model
class SimplePyramid(nn.Module):
    """ViTDet's simple feature pyramid: 1/16 maps -> strides 4, 8, 16, 32.

    Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ECCV
    2022), Sec. 3 / Fig. 2c: scale x4 is two stride-2 transposed convs with LN + GELU
    between them (channels C -> C/2 -> C/4), x2 one transposed conv (C -> C/2), x1 the
    identity, x0.5 a 2x2 max pool. ViTDet builds every level from the last map; here each
    level may also take its own map (pass one map per level: BEiT / LV-ViT style taps).
    The 1x1 / 3x3 output convs of ViTDet's neck are left to the FPN / UPerNet that
    follows; ``out_norm`` puts a LayerNorm on each level instead, so that the decoder sees
    features of comparable scale.

    Args:
        in_channels: channels of the 1/16 input map(s).
        scales: one scale per output level, each in (4, 2, 1, 0.5).
        out_norm: LayerNorm2d on each output.
    """

    def __init__(self, in_channels: int, scales: Sequence[float] = (4, 2, 1, 0.5),
                 out_norm: bool = True):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.ops = nn.ModuleList()
        self.out_channels = []
        c = in_channels
        for scale in self.scales:
            if scale == 4:
                op = nn.Sequential(
                    nn.ConvTranspose2d(c, c // 2, 2, stride=2), LayerNorm2d(c // 2, eps=1e-6),
                    nn.GELU(), nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2))
                out = c // 4
            elif scale == 2:
                op, out = nn.ConvTranspose2d(c, c // 2, 2, stride=2), c // 2
            elif scale == 1:
                op, out = nn.Identity(), c
            elif scale == 0.5:
                op, out = nn.MaxPool2d(2, stride=2), c
            else:
                raise ValueError(f'SimplePyramid: scale {scale} is not one of 4, 2, 1, 0.5')
            self.ops.append(op)
            self.out_channels.append(out)
        self.norms = nn.ModuleList(
            LayerNorm2d(c, eps=1e-6) if out_norm else nn.Identity() for c in self.out_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(feats) == 1:
            feats = list(feats) * len(self.ops)
        if len(feats) != len(self.ops):
            raise ValueError(f'SimplePyramid takes 1 or {len(self.ops)} maps, got {len(feats)}')
        return [norm(op(f)) for op, norm, f in zip(self.ops, self.norms, feats)]
