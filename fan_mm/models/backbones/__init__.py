"""Dense-prediction backbones (mmengine modules registered in mmdet's and mmseg's MODELS)."""
from .base import DenseBackbone
from .fan import FANHybrid, FANViT
from .fan_swin import FANSwin
from .lvvit import LVViT

__all__ = ['DenseBackbone', 'FANHybrid', 'FANViT', 'FANSwin', 'LVViT']
