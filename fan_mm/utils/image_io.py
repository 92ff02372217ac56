"""Reading image files the way mmcv's ``LoadImageFromFile`` does (cv2 backend, ``color_type='color'``).

One reader for everything in fan_mm that opens an image file (corrupted-dataset synthesis, the corruption
grid, the analysis tools), so that each sees the pixels a model sees:

- ``cv2.imdecode(..., IMREAD_COLOR)``: 8-bit, three channels, EXIF orientation applied. Grey and palette
  images are expanded to three channels, alpha is dropped, and 16-bit images are reduced to 8 bits by
  taking the high byte (a 16-bit grey PNG keeps its contrast; PIL's ``convert('RGB')`` clips it to
  white instead).
- Empty, truncated, corrupt and non-image files raise :class:`ImageReadError` naming the file; a missing
  file raises ``FileNotFoundError``.
- :func:`odd_properties` says what the decoder converted (grey, alpha, palette, 16 bit, CMYK), for tools
  that report it.
"""
import io
import os
from typing import List, Optional, Tuple

import cv2
import numpy as np

__all__ = ['CHANNEL_ORDERS', 'IMAGE_EXTENSIONS', 'ImageReadError', 'decode_image', 'odd_properties', 'read_image']

# How an image array is laid out in memory: the ``channel_order`` of the readers here. The corruption
# engine's vocabulary (fan_mm.corruptions.CHANNEL_ORDERS) adds 'bgr_legacy' to these; see
# fan_mm.robustness.protocol for the whole vocabulary.
CHANNEL_ORDERS = ('rgb', 'bgr')
# the files fan_mm reads as images (folder layouts, analysis inputs): what OpenCV decodes
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


class ImageReadError(ValueError):
    """An image file that cannot be decoded (empty, truncated, corrupt or not an image)."""


def _png_header(buf: bytes) -> Optional[Tuple[int, int]]:
    """(bit depth, colour type) of a PNG, from its IHDR chunk; None if not a PNG."""
    if len(buf) >= 26 and buf[:8] == b'\x89PNG\r\n\x1a\n' and buf[12:16] == b'IHDR':
        return buf[24], buf[25]
    return None


def odd_properties(buf: bytes) -> List[str]:
    """What decoding converts in this file: ``'grayscale'``, ``'alpha'``, ``'palette'``, ``'16-bit'``,
    ``'cmyk'`` (read from the header; empty for a plain 8-bit colour image)."""
    notes = []
    png = _png_header(buf)
    if png is not None:
        depth, colour = png
        if depth == 16:
            notes.append('16-bit')
        notes += {0: ['grayscale'], 3: ['palette'], 4: ['grayscale', 'alpha'], 6: ['alpha']}.get(colour, [])
        return notes
    try:
        from PIL import Image
        mode = Image.open(io.BytesIO(buf)).mode  # header only
    except Exception:  # noqa: BLE001 - cv2 decides whether the file is readable
        return notes
    if mode in ('L', '1', 'LA', 'I', 'I;16', 'I;16B', 'F'):
        notes.append('grayscale')
    if mode in ('I', 'I;16', 'I;16B', 'F'):
        notes.append('16-bit')
    if mode in ('RGBA', 'LA', 'PA'):
        notes.append('alpha')
    if mode == 'P':
        notes.append('palette')
    if mode == 'CMYK':
        notes.append('cmyk')
    return notes


def decode_image(buf: bytes, name: str, channel_order: str = 'bgr') -> np.ndarray:
    """Decode an encoded image (the bytes of a file) to uint8 ``H x W x 3`` in ``channel_order``
    (``'bgr'``, as mmcv loads, or ``'rgb'``).

    Raises:
        ImageReadError: ``buf`` is empty or cannot be decoded; the message starts with ``name``.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f'channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}')
    if not buf:
        raise ImageReadError(f'{name}: empty file')
    img = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageReadError(f'{name}: cannot decode ({len(buf)} bytes): truncated, corrupt or not an image')
    return np.ascontiguousarray(img[..., ::-1]) if channel_order == 'rgb' else img


def read_image(path, channel_order: str = 'rgb') -> np.ndarray:
    """Read an image file as uint8 ``H x W x 3``, RGB by default (see the module docstring).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ImageReadError: the file cannot be read or decoded; the message names it.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'image not found: {path!r}')
    try:
        with open(path, 'rb') as f:
            buf = f.read()
    except OSError as e:
        raise ImageReadError(f'cannot read image {path!r}: {e.strerror}') from None
    return decode_image(buf, f'cannot read image {path!r}', channel_order)
