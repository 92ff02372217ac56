"""fan_mm: FAN and LV-ViT backbones for mmdetection / mmsegmentation, and a corruption-robustness benchmark
(Cityscapes-C, COCO-C) for dense prediction.

The package root imports nothing: each part is imported where it is used, so that the corruption engine
(``fan_mm.corruptions``, numpy / OpenCV / numba only) and its synthesis workers never load torch or mmcv.

- ``fan_mm.models``: registers FAN / LV-ViT in timm and the dense backbones in mmdet's / mmseg's ``MODELS``;
- ``fan_mm.engine``: the runner hooks and optimizer constructor of the recipes (and mmengine's resume fix);
- ``fan_mm.robustness``: the robustness protocol, synthesis, the on-the-fly ``CorruptImage`` transform,
  evaluation and reports.

Configs register what they use through ``custom_imports`` (see ``configs/_base_/models``), as mmdet's
projects do.
"""
from .version import __version__

__all__ = ['__version__']
