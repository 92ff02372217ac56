"""Pipeline transforms for robustness evaluation, registered in mmdet's and mmseg's TRANSFORMS.

* ``CorruptImage``: corrupt the loaded image on the fly, seeded per image, so a model can
  be evaluated on e.g. Cityscapes-C without the corrupted set on disk. Put it right after
  ``LoadImageFromFile`` (before ``Resize``: corruptions are defined at native resolution).
* ``CorruptedImageName``: the other way round, for a corrupted copy written by
  ``tools/make_corrupted_dataset.py`` in another format than the source (COCO's JPEGs are
  stored as PNG): maps ``img_path`` to the stored name. Put it before the loader.

Why not mmdet's own ``Corrupt``: it reads the global ``np.random`` state (results depend on
seed, worker count and batch size), corrupts the BGR array as if it were RGB, and cannot be
reproduced on disk. ``CorruptImage`` takes its seed from the image's path relative to the
dataset's image folder (``key_root``), exactly like the synthesis tool, so the on-the-fly
and on-disk protocols give the same pixels. It is registered under its own name so that
mmdet's ``Corrupt`` keeps working for configs that use it.
"""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from fan_mm.registry import register_transform

from . import protocol
from .codec import OUTPUT_FORMATS, corrupt_loaded_image, output_name

__all__ = ['CorruptImage', 'CorruptedImageName', 'image_key']


def image_key(img_path: str, key_root: Optional[str] = None) -> str:
    """The stable key an image's seeds are derived from: its POSIX path relative to
    ``key_root`` (the dataset's image folder), or its file name when no root is given."""
    if key_root is None:
        return osp.basename(img_path)
    rel = osp.relpath(osp.abspath(img_path), osp.abspath(key_root))
    if rel == '..' or rel.startswith('..' + osp.sep) or osp.isabs(rel):
        raise ValueError(f'CorruptImage: image {img_path!r} is not inside key_root {key_root!r}; '
                         'key_root must be the dataset\'s image folder')
    return rel.replace(osp.sep, '/')


@register_transform
class CorruptImage(BaseTransform):
    """Apply one corruption at one severity to ``results['img']`` (fan_mm.corruptions).

    Required keys: ``img``, ``img_path``. Modified key: ``img`` (same shape and dtype).

    Args:
        corruption (str): a corruption name of ``fan_mm.corruptions`` (suite ``all``).
        severity (int): 1..5.
        seed (int): base seed; the image's seed is ``image_seed(key, corruption, severity,
            seed)`` with ``key`` from ``image_key(img_path, key_root)``.
        key_root (str, optional): the dataset's image folder (``data_root`` joined with the
            image prefix). Keys are paths relative to it, as the synthesis tool's keys are
            relative to its image folder. ``None`` uses the file name, which is enough when
            names are unique (Cityscapes, COCO, ADE20K).
        channel_order (str): the protocol: ``'rgb'`` (default: the image is corrupted as
            RGB, the engine's convention) or ``'bgr_legacy'`` (mmdet's historical protocol,
            which passed the BGR array to imagecorruptions; the noises, snow, frost, spatter, brightness,
            saturate and jpeg_compression differ: ``fan_mm.corruptions.CHANNEL_ORDER_DEPENDENT``).
            ``results['img']`` is BGR, as mmcv's ``LoadImageFromFile`` gives it.
    """

    def __init__(self, corruption: str, severity: int, seed: int = 0, key_root: Optional[str] = None,
                 channel_order: str = 'rgb') -> None:
        try:
            self.corruption = protocol.check_corruption(corruption)
            self.severity = protocol.check_severity(severity)
            self.seed = protocol.check_seed(seed)
            self.channel_order = protocol.check_channel_order(channel_order)
        except protocol.ProtocolError as e:
            raise protocol.ProtocolError(f'CorruptImage: {e}') from None
        self.key_root = key_root

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'CorruptImage: {results.get("img_path")}: expected a colour image (HxWx3), got '
                             f'shape {img.shape}; load images with color_type="color"')
        key = image_key(results['img_path'], self.key_root)
        seed = protocol.image_seed(key, self.corruption, self.severity, self.seed)
        out = corrupt_loaded_image(img, self.corruption, self.severity, seed, self.channel_order)
        # Keep the loader's dtype (to_float32=True gives float32 holding uint8 values).
        results['img'] = out if img.dtype == np.uint8 else out.astype(img.dtype)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(corruption={self.corruption!r}, severity={self.severity}, '
                f'seed={self.seed}, key_root={self.key_root!r}, channel_order={self.channel_order!r})')


@register_transform
class CorruptedImageName(BaseTransform):
    """Rename ``results['img_path']`` to the file name a -C folder of ``format`` stores.

    ``make_corrupted_dataset`` writes lossless PNG by default, so ``x.jpg`` is stored as
    ``x.png`` (see ``fan_mm.robustness.codec.output_name``). Modified key: ``img_path``.
    """

    def __init__(self, format: str = 'png') -> None:  # noqa: A002 - the config key users write
        if format not in OUTPUT_FORMATS:
            raise ValueError(f'CorruptedImageName: unknown format {format!r}; choose one of {list(OUTPUT_FORMATS)}')
        self.format = format

    def transform(self, results: dict) -> dict:
        results['img_path'] = output_name(results['img_path'], self.format)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(format={self.format!r})'
