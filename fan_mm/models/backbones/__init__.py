"""Dense-prediction backbones (mmengine modules registered in mmdet's and mmseg's MODELS)."""
from .base import DenseBackbone, LayerNorm2d, SimplePyramid
from .fan import FANHybrid, FANViT

__all__ = ['DenseBackbone', 'LayerNorm2d', 'SimplePyramid', 'FANHybrid', 'FANViT']
