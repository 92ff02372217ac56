"""Necks (registered in mmdet's and mmseg's MODELS)."""
from .simple_pyramid import SimplePyramid

__all__ = ['SimplePyramid']
