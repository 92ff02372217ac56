"""Blur corruptions: defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur.

- defocus_blur: 1.1.2's own OpenCV calls (``cv2.filter2D`` per channel on float64).
- glass_blur: the two Gaussian blurs are exact compiled replicas of scikit-image's; the pixel
  loop runs sequentially in compiled code on random offsets pre-drawn with one
  ``np.random.randint(-d, d, size=(n, 2))`` per iteration, which yields exactly the stream of
  1.1.2's ``n`` calls of ``np.random.randint(-d, d, size=(2,))`` (legacy bounded integers
  draw each value independently from 32-bit words).
- motion_blur: 1.1.2's numpy ``_motion_blur`` (``np.roll`` shifts summed in float64) as one
  compiled loop over rows.
- zoom_blur: each ``clipped_zoom`` is an exact replica of ``scipy.ndimage.zoom(order=1)``
  that computes only the kept top-left part and adds it straight into the float32 sum.
- gaussian_blur: the exact compiled Gaussian.

All bit-exact.
"""
import math

import cv2
import numpy as np

from . import _kernels as K
from ._ndimage import clipped_zoom_accumulate, gaussian_filter

_LUT01 = np.arange(256) / 255.


def _disk(radius, alias_blur=0.1, dtype=np.float32):
    """1.1.2's anti-aliased disk kernel (the same numpy/OpenCV steps)."""
    if radius <= 8:
        coords = np.arange(-8, 8 + 1)
        ksize = (3, 3)
    else:
        coords = np.arange(-radius, radius + 1)
        ksize = (5, 5)
    xx, yy = np.meshgrid(coords, coords)
    disk = np.array((xx ** 2 + yy ** 2) <= radius ** 2, dtype=dtype)
    disk /= np.sum(disk)
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def defocus_blur(img, severity, rng):
    c = [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)][severity - 1]
    x = _LUT01[img]
    kernel = _disk(radius=c[0], alias_blur=c[1])
    out = np.empty(img.shape, np.uint8)
    for d in range(3):
        plane = cv2.filter2D(np.ascontiguousarray(x[:, :, d]), -1, kernel)
        out[:, :, d] = K.unit64_to_uint8(plane)
    return out


_GLASS_BLOCK = 1 << 20   # random offset pairs drawn at once (16 MB)


def glass_blur(img, severity, rng):
    sigma, d, iterations = [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2),
                            (1.5, 4, 2)][severity - 1]
    height, width = img.shape[:2]
    x = gaussian_filter(img, sigma, post='scale255')
    # 1.1.2 loops h = H-d .. d+1, w = W-d .. d+1, one randint(-d, d, size=(2,)) each; the
    # draws are independent, so drawing them a block of rows at a time gives the same stream
    cols = max(width - 2 * d, 0)
    rows_per_block = max(1, _GLASS_BLOCK // max(cols, 1))
    for _ in range(iterations):
        h = height - d
        while h > d:
            last = max(h - rows_per_block + 1, d + 1)
            rnd = rng.rs.randint(-d, d, size=((h - last + 1) * cols, 2))
            K.glass_shuffle(x, d, h, last, rnd)
            h = last - 1
    return gaussian_filter(x, sigma, post='clip255')


def motion_kernel_taps(shape, radius, sigma, angle):
    """Offsets and weights of 1.1.2's ``_motion_blur`` for a (H, W[, C]) input: the Gaussian
    weights over ``width = 2 * radius + 1`` taps along the angle, cut where the offset
    reaches the image size (1.1.2 ``break``s there)."""
    width = radius * 2 + 1
    k = np.exp(-np.arange(width) ** 2 / (2 * (sigma ** 2))) / (np.sqrt(2 * np.pi) * sigma)
    kernel = k / np.sum(k)
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(point[0], point[1])
    dys, dxs = [], []
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if np.abs(dy) >= shape[0] or np.abs(dx) >= shape[1]:
            break
        dys.append(dy)
        dxs.append(dx)
    n = len(dys)
    return (np.array(dys, np.int64), np.array(dxs, np.int64),
            np.ascontiguousarray(kernel[:n], np.float64))


def motion_blur(img, severity, rng):
    radius, sigma = [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)][severity - 1]
    angle = rng.rs.uniform(-45, 45)
    dys, dxs, kernel = motion_kernel_taps(img.shape, radius, sigma, angle)
    out, _ = K.motion_blur(img, dys, dxs, kernel, img.shape[0], img.shape[1], True)
    return out


_ZOOMS = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
          np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))


def zoom_blur(img, severity, rng):
    zooms = _ZOOMS[severity - 1]
    x = _LUT01[img].astype(np.float32)
    acc = np.zeros_like(x)
    for z in zooms:
        clipped_zoom_accumulate(x, z, acc)
    return K.zoom_blur_finish(x, acc, len(zooms) + 1)


def gaussian_blur(img, severity, rng):
    c = [1, 2, 3, 4, 6][severity - 1]
    return gaussian_filter(img, c, post='clip255')
