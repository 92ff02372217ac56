"""Weather corruptions: snow, frost, fog, spatter (and brightness, which ImageNet-C files
under weather; it lives in :mod:`.digital` next to saturate, its HSV twin).

- snow: normal layer -> exact ``clipped_zoom`` -> threshold -> the compiled ``_motion_blur``
  (only the kept crop) -> one fused blend pass; the grey image comes from the same
  ``cv2.cvtColor(RGB2GRAY)`` call as 1.1.2.
- frost: the same ``cv2.imread`` / ``cv2.resize(INTER_CUBIC)`` / random crop; the resized
  texture is cached per (texture, size), which pays off on datasets of one image size.
- fog: ``plasma_fractal``'s diamond-square steps in compiled code on the same uniform draws
  (one ``np.random.uniform`` per step and shape, in 1.1.2's order), fused with the blend.
- spatter: the exact compiled Gaussian, 1.1.2's own OpenCV calls for the water edges, and
  one fused blend pass.

All bit-exact.
"""
import collections
import threading

import cv2
import numpy as np

from . import _kernels as K
from ._ndimage import clipped_zoom_region, gaussian_filter
from .blur import motion_kernel_taps
from .resources import frost_dir, load_frost

_LUT01 = np.arange(256) / 255.
_LUT01_F32 = (np.arange(256, dtype=np.float32) / np.float32(255.))  # float32 x / 255.


def snow(img, severity, rng):
    c = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8),
         (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
         (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
         (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
         (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)][severity - 1]
    height, width = img.shape[:2]
    x = _LUT01_F32[img]
    layer = rng.rs.normal(size=(height, width), loc=c[0], scale=c[1])
    # the whole zoomed layer is motion-blurred (its size matters at the borders) ...
    big = clipped_zoom_region(layer[..., np.newaxis], c[2], 1 << 62, 1 << 62)
    big[big < c[3]] = 0
    np.clip(big, 0, 1, out=big)
    dys, dxs, kernel = motion_kernel_taps(big.shape[:2], c[4], c[5],
                                          rng.rs.uniform(-135, -45))
    # ... but only the top-left (H, W) crop is kept
    _, blurred = K.motion_blur(big, dys, dxs, kernel, min(height, big.shape[0]),
                               min(width, big.shape[1]), False)
    layer = K.snow_layer_finish(blurred[..., 0])
    if layer.shape != (height, width):
        raise ValueError(f'snow: zoomed layer {layer.shape} smaller than the image')
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
    return K.snow_blend(x, gray, layer, np.float32(c[6]), np.float32(1 - c[6]))


_FROST_CACHE = collections.OrderedDict()
_FROST_CACHE_SIZE = 8
_FROST_LOCK = threading.Lock()


def _resized_frost(idx, size):
    """``cv2.resize(frost_idx, size, INTER_CUBIC)``, cached: datasets repeat image sizes."""
    key = (frost_dir(), idx, size)
    with _FROST_LOCK:
        if key in _FROST_CACHE:
            _FROST_CACHE.move_to_end(key)
            return _FROST_CACHE[key]
    image = cv2.resize(load_frost(idx), dsize=size, interpolation=cv2.INTER_CUBIC)
    image.setflags(write=False)
    with _FROST_LOCK:
        _FROST_CACHE[key] = image
        if len(_FROST_CACHE) > _FROST_CACHE_SIZE:
            _FROST_CACHE.popitem(last=False)
    return image


def frost(img, severity, rng):
    c = [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)][severity - 1]
    idx = rng.rs.randint(5)
    frost_shape = load_frost(idx).shape
    x_shape = img.shape
    # 1.1.2's scaling rule, verbatim in effect: grow the texture to cover the image, x 1.1
    scaling_factor = 1
    if frost_shape[0] >= x_shape[0] and frost_shape[1] >= x_shape[1]:
        scaling_factor = 1
    elif frost_shape[0] < x_shape[0] and frost_shape[1] >= x_shape[1]:
        scaling_factor = x_shape[0] / frost_shape[0]
    elif frost_shape[0] >= x_shape[0] and frost_shape[1] < x_shape[1]:
        scaling_factor = x_shape[1] / frost_shape[1]
    else:
        scaling_factor = np.maximum(x_shape[0] / frost_shape[0], x_shape[1] / frost_shape[1])
    scaling_factor *= 1.1
    new_shape = (int(np.ceil(frost_shape[1] * scaling_factor)),
                 int(np.ceil(frost_shape[0] * scaling_factor)))
    texture = _resized_frost(idx, new_shape)
    x_start = rng.rs.randint(0, texture.shape[0] - x_shape[0])
    y_start = rng.rs.randint(0, texture.shape[1] - x_shape[1])
    crop = texture[x_start:x_start + x_shape[0], y_start:y_start + x_shape[1]][..., ::-1]
    return K.frost_blend(img, crop, float(c[0]), float(c[1]))


def _next_power_of_2(x):
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


def plasma_fractal(mapsize, wibbledecay, rs):
    """1.1.2's diamond-square height map before normalisation (float64, mapsize^2)."""
    assert mapsize & (mapsize - 1) == 0
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize = mapsize
    wibble = 100
    while stepsize >= 2:
        n = mapsize // stepsize
        K.plasma_squares(maparray, stepsize, float(wibble),
                         rs.uniform(-wibble, wibble, (n, n)))
        rnd_lt = rs.uniform(-wibble, wibble, (n, n))
        rnd_tt = rs.uniform(-wibble, wibble, (n, n))
        K.plasma_diamonds(maparray, stepsize, float(wibble), rnd_lt, rnd_tt)
        stepsize //= 2
        wibble /= wibbledecay
    return maparray


def fog(img, severity, rng):
    c = [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)][severity - 1]
    map_size = _next_power_of_2(int(max(img.shape)))
    maparray = plasma_fractal(map_size, c[1], rng.rs)
    return K.fog_blend(img, maparray, float(c[0]))


_WATER = np.array([175 / 255., 238 / 255., 238 / 255.], np.float32)
_MUD = np.array([63 / 255., 42 / 255., 20 / 255.])
_SPATTER_EDGE_KERNEL = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])


def spatter(img, severity, rng):
    c = [(0.65, 0.3, 4, 0.69, 0.6, 0),
         (0.65, 0.3, 3, 0.68, 0.6, 0),
         (0.65, 0.3, 2, 0.68, 0.5, 0),
         (0.65, 0.3, 1, 0.65, 1.5, 1),
         (0.67, 0.4, 1, 0.65, 1.5, 1)][severity - 1]
    height, width = img.shape[:2]
    x = _LUT01_F32[img]
    liquid = rng.rs.normal(size=(height, width), loc=c[0], scale=c[1])
    liquid = gaussian_filter(liquid, c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:
        # water drops: 1.1.2's OpenCV edge / distance pipeline, unchanged
        layer = (liquid * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, _SPATTER_EDGE_KERNEL)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        return K.spatter_water(x, layer, dist, np.float32(c[4]), _WATER)
    # mud
    m = np.where(liquid > c[3], 1, 0).astype(np.float32)
    m = gaussian_filter(m, c[4])
    m[m < 0.8] = 0
    return K.spatter_mud(x, m, _MUD)
