"""fan_mm: FAN and LV-ViT backbones for mmdetection / mmsegmentation, and a
corruption-robustness benchmark (Cityscapes-C, COCO-C) for dense prediction.

Importing the package registers the classification models in timm and, where
mmdet / mmseg are installed, the dense backbones and transforms in their registries.
"""
from .version import __version__

__all__ = ['__version__']
