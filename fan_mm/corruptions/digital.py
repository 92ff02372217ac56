"""Digital corruptions: contrast, elastic_transform, pixelate, jpeg_compression, saturate,
and brightness (a weather corruption in ImageNet-C, digital in Cityscapes-C).

- brightness / saturate: scikit-image's rgb2hsv -> adjust -> hsv2rgb, per pixel in one
  compiled pass with the same float64 operations.
- contrast: numpy's own ``np.mean`` (its summation order decides the last bit), then a
  256-entry lookup table per channel that holds 1.1.2's expression for every grey level.
- elastic_transform: the exact compiled Gaussian (mode 'reflect', truncate 3) and an exact
  compiled ``map_coordinates(order=1, mode='reflect')``.
- pixelate / jpeg_compression: 1.1.2's Pillow calls.

All bit-exact.
"""
from io import BytesIO

import numpy as np
from PIL import Image

from . import _kernels as K
from ._ndimage import gaussian_filter, map_coordinates_linear_reflect

_LUT01 = np.arange(256) / 255.
_LUT01_F32 = (np.arange(256, dtype=np.float32) / np.float32(255.))


def brightness(img, severity, rng):
    c = [.1, .2, .3, .4, .5][severity - 1]
    return K.hsv_adjust(img, 0, c, 0.0)


def saturate(img, severity, rng):
    c = [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)][severity - 1]
    return K.hsv_adjust(img, 1, float(c[0]), float(c[1]))


def contrast(img, severity, rng):
    c = [0.4, .3, .2, .1, .05][severity - 1]
    means = np.mean(_LUT01[img], axis=(0, 1))
    out = np.empty_like(img)
    for ch in range(img.shape[2]):
        lut = (np.clip((_LUT01 - means[ch]) * c + means[ch], 0, 1) * 255).astype(np.uint8)
        out[..., ch] = lut[img[..., ch]]
    return out


def elastic_transform(img, severity, rng):
    image = _LUT01_F32[img]
    shape = image.shape
    sigma = np.array(shape[:2]) * 0.01
    alpha = [250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12][severity - 1]
    max_dx = shape[0] * 0.005
    max_dy = shape[0] * 0.005
    dx = (gaussian_filter(rng.rs.uniform(-max_dx, max_dx, size=shape[:2]), sigma,
                          mode='reflect', truncate=3) * alpha).astype(np.float32)
    dy = (gaussian_filter(rng.rs.uniform(-max_dy, max_dy, size=shape[:2]), sigma,
                          mode='reflect', truncate=3) * alpha).astype(np.float32)
    return K.unit32_to_uint8(map_coordinates_linear_reflect(image, dx, dy))


def pixelate(img, severity, rng):
    c = [0.6, 0.5, 0.4, 0.3, 0.25][severity - 1]
    height, width = img.shape[:2]
    x = Image.fromarray(img)
    x = x.resize((int(width * c), int(height * c)), Image.BOX)
    x = x.resize((width, height), Image.NEAREST)
    return np.asarray(x).copy()


def jpeg_compression(img, severity, rng):
    c = [25, 18, 15, 10, 7][severity - 1]
    buffer = BytesIO()
    Image.fromarray(img).save(buffer, 'JPEG', quality=c)
    return np.array(Image.open(buffer))
