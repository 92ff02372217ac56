"""Pixels of the robustness pipeline: decode -> corrupt -> encode.

:func:`corrupt_loaded_image` is the one corruption call of fan_mm's pipeline: synthesis
(:func:`corrupt_and_encode`, after :func:`decode_image`) and the on-the-fly ``CorruptImage``
transform both go through it, so a -C image on disk equals what the transform produces
in a pipeline, bit for bit.

* Images are decoded exactly as mmcv's ``LoadImageFromFile`` decodes them
  (:func:`fan_mm.utils.image_io.decode_image`: BGR, 8 bit, EXIF orientation applied,
  grey/alpha/16-bit converted).
* Encoding is deterministic (no timestamps or metadata); PNG, lossless, by default.
  :func:`output_name` is the one rule that names a stored file after its source.

Nothing here imports torch or the OpenMMLab packages.
"""
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np

from fan_mm import corruptions as _engine
from fan_mm.utils import image_io

from . import protocol

__all__ = ['MIN_SIDE', 'OUTPUT_FORMATS', 'InputError', 'check_format', 'output_name', 'decode_image',
           'corrupt_loaded_image', 'encode_image', 'corrupt_and_encode']

OUTPUT_FORMATS = {'png': '.png', 'jpeg': '.jpg'}
# imagecorruptions' own lower limit (its frost crops and zoom factors assume it).
MIN_SIDE = _engine.MIN_SIZE


class InputError(ValueError):
    """One source image cannot be used; the message names the file."""


def check_format(fmt: str) -> str:
    """``fmt`` if it is an output format (``'png'`` or ``'jpeg'``)."""
    if fmt not in OUTPUT_FORMATS:
        raise protocol.ProtocolError(f'unknown output format {fmt!r}; choose one of {list(OUTPUT_FORMATS)}')
    return fmt


def output_name(name: str, fmt: str = 'png') -> str:
    """File name under which a source ``name`` is stored in a -C folder of format ``fmt``.

    PNG (lossless, the default) keeps names that already end in ``.png`` and replaces any
    other extension by ``.png`` (COCO ``000000000139.jpg`` -> ``000000000139.png``);
    ``jpeg`` keeps ``.jpg``/``.jpeg`` and replaces the rest by ``.jpg``.
    """
    check_format(fmt)
    stem, ext = osp.splitext(name)
    keep = ('.png',) if fmt == 'png' else ('.jpg', '.jpeg')
    return name if ext.lower() in keep else stem + OUTPUT_FORMATS[fmt]


def decode_image(buf: bytes, name: str) -> Tuple[np.ndarray, List[str]]:
    """Decode like mmcv's ``LoadImageFromFile`` (cv2 backend, ``color_type='color'``), through
    :func:`fan_mm.utils.image_io.decode_image`, the reader of every fan_mm tool.

    Returns the BGR uint8 HxWx3 array and the conversions the loader applied (``'grayscale'``,
    ``'alpha'``, ``'16-bit'`` ...); raises ``InputError`` naming ``name`` when the file is
    empty, truncated or not an image, or smaller than 32 px (imagecorruptions' minimum).
    """
    try:
        img = image_io.decode_image(buf, name, channel_order='bgr')
    except image_io.ImageReadError as e:
        raise InputError(str(e)) from None
    if min(img.shape[:2]) < MIN_SIDE:
        raise InputError(f'{name}: {img.shape[1]}x{img.shape[0]} px is too small to corrupt '
                         f'(both sides must be at least {MIN_SIDE} px)')
    return img, image_io.odd_properties(buf)


def corrupt_loaded_image(img: np.ndarray, corruption: str, severity: int, seed: int,
                         channel_order: str = 'rgb') -> np.ndarray:
    """Corrupt a BGR image as the loader produced it; the result is BGR uint8 of the same shape
    (float input holding 0..255 values, as with ``to_float32=True``, is rounded first).

    ``channel_order`` is the protocol (:data:`~fan_mm.robustness.protocol.PROTOCOL_CHANNEL_ORDERS`):
    ``'rgb'`` (the image is corrupted as RGB, the engine's convention, the default) or ``'bgr_legacy'``
    (mmdet's historical ``Corrupt`` transform fed the BGR array straight into imagecorruptions; the
    corruptions of ``fan_mm.corruptions.CHANNEL_ORDER_DEPENDENT`` differ: the noises, snow, frost,
    spatter, brightness, saturate, jpeg_compression). ``seed`` is the image's own seed
    (:func:`~fan_mm.robustness.protocol.image_seed`).
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 image, got shape {img.shape}')
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8) if np.issubdtype(img.dtype, np.floating) \
            else np.clip(img, 0, 255).astype(np.uint8)
    out = _engine.corrupt(img, corruption, int(severity), seed=int(seed),
                          channel_order=protocol.engine_channel_order(channel_order))
    return np.asarray(out, np.uint8)


def encode_image(img_bgr: np.ndarray, fmt: str = 'png', png_compression: int = 6,
                 jpeg_quality: int = 95) -> bytes:
    """Encode deterministically (no timestamps or metadata): PNG by default."""
    if check_format(fmt) == 'png':
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    ok, data = cv2.imencode(OUTPUT_FORMATS[fmt], img_bgr, params)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {img_bgr.shape} image as {fmt}')
    return data.tobytes()


def corrupt_and_encode(img: np.ndarray, corruption: str, severity: int, seed: int, channel_order: str = 'rgb',
                       fmt: str = 'png', png_compression: int = 6, jpeg_quality: int = 95) -> bytes:
    """The bytes of the stored file for a decoded image (what synthesis writes)."""
    out = corrupt_loaded_image(img, corruption, severity, seed, channel_order)
    return encode_image(out, fmt, png_compression, jpeg_quality)
