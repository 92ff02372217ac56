"""Dense-prediction backbones (mmengine modules registered in mmdet's and mmseg's MODELS)."""
from .base import DenseBackbone, LayerNorm2d, SimplePyramid
from .fan import FANHybrid, FANViT

__all__ = ['DenseBackbone', 'LayerNorm2d', 'SimplePyramid', 'FANHybrid', 'FANViT']
from .fan_swin import FANSwin  # noqa: E402
from .lvvit import LVViT  # noqa: E402

__all__ += ['FANSwin', 'LVViT']
