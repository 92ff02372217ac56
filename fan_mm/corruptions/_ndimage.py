"""Compiled replicas of the few scipy.ndimage routines that imagecorruptions 1.1.2 calls.

Each function reproduces the floating-point operations of scipy's C code (``ni_filters.c``,
``ni_interpolation.c``, ``ni_splines.c``) in the same order, so the results are bit-identical
to scipy's, only faster: the loops run over contiguous rows so that LLVM vectorises them, and
only the part of the output that the corruption keeps is computed.

- :func:`gaussian_filter` = ``skimage.filters.gaussian`` / ``scipy.ndimage.gaussian_filter``
  (order 0, modes ``'nearest'`` and ``'reflect'``): separable correlation along axis 0 then
  axis 1, accumulated in float64 as ``c*w0 + sum_{k=r..1} (left_k + right_k) * w_k``; the
  intermediate array has the dtype of the input (float32 stays float32 between the passes).
- :func:`clipped_zoom_region` / :func:`clipped_zoom_accumulate` = imagecorruptions'
  ``clipped_zoom`` (``scipy.ndimage.zoom(order=1, mode='constant', grid_mode=False)`` of a
  centre crop), restricted to the top-left part that the corruption keeps.
- :func:`map_coordinates_linear_reflect` = ``scipy.ndimage.map_coordinates(order=1,
  mode='reflect')`` for the (row + dy, col + dx, channel) coordinates of elastic_transform.

All kernels are single-threaded on purpose: corruption is parallelised over images (worker
processes), and nested thread pools would oversubscribe the cores.  ``cache=True`` keeps the
compiled code on disk so that worker processes do not recompile.
"""
import math

import numpy as np
from numba import njit

__all__ = ['gaussian_kernel1d', 'gaussian_filter', 'clipped_zoom_region',
           'clipped_zoom_accumulate', 'zoom_output_shape', 'map_coordinates_linear_reflect']

MODE_NEAREST = 0
MODE_REFLECT = 1
_MODES = {'nearest': MODE_NEAREST, 'reflect': MODE_REFLECT}


def gaussian_kernel1d(sigma, truncate=4.0):
    """Half of scipy's 1-D Gaussian kernel: ``w[0]`` is the centre tap, ``w[k]`` the tap at
    distance ``k``.  Computed with the same numpy expression as scipy so the values match to
    the last bit (scipy's kernel is exactly symmetric, so only one half is needed)."""
    radius = int(truncate * float(sigma) + 0.5)
    sigma2 = sigma * sigma
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / sigma2 * x ** 2)
    phi = phi / phi.sum()
    return np.ascontiguousarray(phi[radius:])


def _extension_index(length, radius, mode):
    """Source index for each position of a line padded by ``radius`` on both sides, following
    scipy's line-buffer extension (``NI_ExtendLine``) for any radius, also radius > length."""
    pos = np.arange(-radius, length + radius)
    if mode == MODE_NEAREST:
        return np.clip(pos, 0, length - 1).astype(np.int64)
    # 'reflect' (d c b a | a b c d | d c b a): symmetric with period 2 * length
    m = np.mod(pos, 2 * length)
    return np.where(m >= length, 2 * length - 1 - m, m).astype(np.int64)


_BLOCK = 512   # elements per block: the accumulator and its inputs stay in L1 cache


@njit(cache=True)
def _correlate_axis0(src, dst, w, ext):
    """scipy's symmetric correlate1d along axis 0 of a (H, N) array (N = W * C).

    Column blocks outermost, so that the 2r+1 row segments in use stay in cache."""
    height, n = src.shape
    r = w.shape[0] - 1
    acc = np.empty(_BLOCK, np.float64)
    w0 = w[0]
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        for i in range(height):
            centre = src[ext[i + r], j0:j0 + m]
            for j in range(m):
                acc[j] = np.float64(centre[j]) * w0
            for k in range(r, 0, -1):
                a = src[ext[i + r - k], j0:j0 + m]
                b = src[ext[i + r + k], j0:j0 + m]
                wk = w[k]
                for j in range(m):
                    acc[j] += (np.float64(a[j]) + np.float64(b[j])) * wk
            out = dst[i, j0:j0 + m]
            for j in range(m):
                out[j] = acc[j]


@njit(cache=True)
def _correlate_axis1(src, dst, w, ext, channels):
    """scipy's symmetric correlate1d along axis 1 of a (H, W * C) array, C interleaved."""
    height, n = src.shape
    width = n // channels
    r = w.shape[0] - 1
    padded = np.empty((width + 2 * r) * channels, np.float64)
    acc = np.empty(_BLOCK, np.float64)
    for i in range(height):
        row = src[i]
        for p in range(width + 2 * r):
            s = ext[p] * channels
            for c in range(channels):
                padded[p * channels + c] = row[s + c]
        out = dst[i]
        for j0 in range(0, n, _BLOCK):
            m = min(_BLOCK, n - j0)
            centre = padded[j0 + r * channels:j0 + r * channels + m]
            w0 = w[0]
            for j in range(m):
                acc[j] = centre[j] * w0
            for k in range(r, 0, -1):
                a = padded[j0 + (r - k) * channels:j0 + (r - k) * channels + m]
                b = padded[j0 + (r + k) * channels:j0 + (r + k) * channels + m]
                wk = w[k]
                for j in range(m):
                    acc[j] += (a[j] + b[j]) * wk
            for j in range(m):
                out[j0 + j] = acc[j]


def gaussian_filter(image, sigma, mode='nearest', truncate=4.0):
    """``skimage.filters.gaussian(image, sigma, mode=mode, truncate=truncate,
    channel_axis=-1 if image.ndim == 3 else None)`` for float32 / float64 input.

    Args:
        image: (H, W) or (H, W, C) float array; a 3-D array is filtered per channel.
        sigma: scalar, or one value per spatial axis (H, W).
        mode: 'nearest' (skimage's default) or 'reflect'.
        truncate: kernel radius in standard deviations.

    Returns:
        A new array of the input's dtype and shape.
    """
    if image.dtype not in (np.float32, np.float64):
        raise TypeError(f'gaussian_filter expects float32/float64, got {image.dtype}')
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=object), (2,))
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    src = image.reshape(height, width * channels)
    code = _MODES[mode]
    for axis, s in enumerate(sigmas):
        if not s > 1e-15:   # scipy skips axes with (near) zero sigma
            continue
        w = gaussian_kernel1d(s, truncate)
        dst = np.empty_like(src)
        if axis == 0:
            _correlate_axis0(src, dst, w, _extension_index(height, w.shape[0] - 1, code))
        else:
            _correlate_axis1(src, dst, w, _extension_index(width, w.shape[0] - 1, code),
                             channels)
        src = dst
    if src is image.reshape(height, width * channels):
        src = src.copy()
    return src.reshape(image.shape)


# ----------------------------------------------------------------------------- zoom


def zoom_output_shape(in_shape, zoom_factor):
    """Output (H, W) of ``scipy.ndimage.zoom`` with factor ``zoom_factor`` on both axes."""
    return tuple(int(round(n * zoom_factor)) for n in in_shape)


@njit(cache=True)
def _zoom_axis_table(in_len, out_len, n_needed):
    """Per output index: the two source indices, their weights and a 'zero' flag, as
    NI_ZoomShift computes them for order 1, mode 'constant', grid_mode False."""
    i0 = np.empty(n_needed, np.int64)
    i1 = np.empty(n_needed, np.int64)
    w0 = np.empty(n_needed, np.float64)
    w1 = np.empty(n_needed, np.float64)
    zero = np.zeros(n_needed, np.bool_)
    if out_len - 1 != 0:
        zoom = np.float64(in_len - 1) / np.float64(out_len - 1)
    else:
        zoom = 1.0
    for k in range(n_needed):
        cc = np.float64(k) * zoom
        if cc > in_len - 1:     # map_coordinate(..., constant) -> -1 -> cval
            zero[k] = True
            i0[k] = 0
            i1[k] = 0
            w0[k] = 0.0
            w1[k] = 0.0
            continue
        start = np.int64(math.floor(cc))
        a = start
        b = start + 1
        if start < 0 or start + 1 >= in_len:
            # border offsets use 'mirror' (the spline mode of 'constant')
            a = _mirror_index(a, in_len)
            b = _mirror_index(b, in_len)
        i0[k] = a
        i1[k] = b
        x = cc - math.floor(cc)
        w0[k] = 1.0 - x
        w1[k] = 1.0 - w0[k]
    return i0, i1, w0, w1, zero


@njit(cache=True)
def _mirror_index(idx, length):
    """map_coordinate(idx, length, NI_EXTEND_MIRROR) for an integer index."""
    x = np.float64(idx)
    if x < 0:
        if length <= 1:
            x = 0.0
        else:
            sz2 = 2 * length - 2
            x = sz2 * np.int64(-x / sz2) + x
            x = x + sz2 if x <= 1 - length else -x
    elif x > length - 1:
        if length <= 1:
            x = 0.0
        else:
            sz2 = 2 * length - 2
            x -= sz2 * np.int64(x / sz2)
            if x >= length:
                x = sz2 - x
    return np.int64(x)


def _zoom_tables(crop_h, crop_w, full_h, full_w, out_h, out_w):
    return (_zoom_axis_table(crop_h, full_h, out_h), _zoom_axis_table(crop_w, full_w, out_w))


@njit(cache=True)
def _zoom_interp(src, top, left, rows, cols, out):
    """out[i, j, c] = bilinear sample of src[top:, left:] (the clipped_zoom crop), summed in
    NI_ZoomShift's order ((v00*a0)*b0 + (v01*a0)*b1 + (v10*a1)*b0 + (v11*a1)*b1); the
    channel axis (zoom 1) contributes weights 1 and 0, which leave the sum unchanged."""
    ri0, ri1, ra0, ra1, rzero = rows
    ci0, ci1, cb0, cb1, czero = cols
    out_h, out_w, channels = out.shape
    for i in range(out_h):
        r0 = src[top + ri0[i]]
        r1 = src[top + ri1[i]]
        a0 = ra0[i]
        a1 = ra1[i]
        for j in range(out_w):
            if rzero[i] or czero[j]:
                for c in range(channels):
                    out[i, j, c] = 0.0
                continue
            j0 = left + ci0[j]
            j1 = left + ci1[j]
            b0 = cb0[j]
            b1 = cb1[j]
            for c in range(channels):
                t = 0.0
                t += (np.float64(r0[j0, c]) * a0) * b0
                t += (np.float64(r0[j1, c]) * a0) * b1
                t += (np.float64(r1[j0, c]) * a1) * b0
                t += (np.float64(r1[j1, c]) * a1) * b1
                out[i, j, c] = t


@njit(cache=True)
def _zoom_accumulate_f32(src, top, left, rows, cols, acc):
    """``acc += float32(zoom sample)``: 1.1.2's ``out += zoom_layer`` for a float32 layer."""
    ri0, ri1, ra0, ra1, rzero = rows
    ci0, ci1, cb0, cb1, czero = cols
    out_h, out_w, channels = acc.shape
    for i in range(min(out_h, ri0.shape[0])):
        if rzero[i]:
            continue
        r0 = src[top + ri0[i]]
        r1 = src[top + ri1[i]]
        a0 = ra0[i]
        a1 = ra1[i]
        for j in range(min(out_w, ci0.shape[0])):
            if czero[j]:
                continue
            j0 = left + ci0[j]
            j1 = left + ci1[j]
            b0 = cb0[j]
            b1 = cb1[j]
            for c in range(channels):
                t = 0.0
                t += (np.float64(r0[j0, c]) * a0) * b0
                t += (np.float64(r0[j1, c]) * a0) * b1
                t += (np.float64(r1[j0, c]) * a1) * b0
                t += (np.float64(r1[j1, c]) * a1) * b1
                acc[i, j, c] = acc[i, j, c] + np.float32(t)


def clipped_zoom_region(img, zoom_factor, out_h, out_w):
    """1.1.2's ``clipped_zoom(img, z)[:out_h, :out_w]`` (centre crop of ``ceil(n / z)``,
    then ``scipy.ndimage.zoom(crop, (z, z, 1), order=1)``), for a (H, W, C) array.

    The zoomed image can be smaller than requested only through rounding; then the result
    is smaller too, as in 1.1.2."""
    crop_h, top, crop_w, left = _clip_box(img.shape, zoom_factor)
    full_h, full_w = zoom_output_shape((crop_h, crop_w), zoom_factor)
    out_h, out_w = min(out_h, full_h), min(out_w, full_w)
    rows, cols = _zoom_tables(crop_h, crop_w, full_h, full_w, out_h, out_w)
    out = np.empty((out_h, out_w, img.shape[2]), img.dtype)
    _zoom_interp(img, top, left, rows, cols, out)
    return out


def clipped_zoom_accumulate(img, zoom_factor, acc):
    """``acc[:h, :w] += clipped_zoom(img, z)[:h, :w]`` for float32 ``img`` and ``acc``."""
    crop_h, top, crop_w, left = _clip_box(img.shape, zoom_factor)
    full_h, full_w = zoom_output_shape((crop_h, crop_w), zoom_factor)
    out_h, out_w = min(acc.shape[0], full_h), min(acc.shape[1], full_w)
    rows, cols = _zoom_tables(crop_h, crop_w, full_h, full_w, out_h, out_w)
    _zoom_accumulate_f32(img, top, left, rows, cols, acc)


def _clip_box(shape, zoom_factor):
    crop_h = int(np.ceil(shape[0] / float(zoom_factor)))
    crop_w = int(np.ceil(shape[1] / float(zoom_factor)))
    return crop_h, (shape[0] - crop_h) // 2, crop_w, (shape[1] - crop_w) // 2


# ------------------------------------------------------------------ map_coordinates


@njit(cache=True)
def _reflect_coordinate(x, length):
    """map_coordinate(x, length, NI_EXTEND_REFLECT) (ni_interpolation.c)."""
    if x < 0:
        if length <= 1:
            x = 0.0
        else:
            sz2 = 2 * length
            if x < -sz2:
                x = sz2 * np.int64(-x / sz2) + x
            if x < -length:
                x = x + sz2
            else:
                x = (1e-15 if x > -1e-15 else -x) - 1
    elif x > length - 1:
        if length <= 1:
            x = 0.0
        else:
            sz2 = 2 * length
            x -= sz2 * np.int64(x / sz2)
            if x >= length:
                x = sz2 - x - 1
    return x


@njit(cache=True)
def _linear_taps(cc, length):
    """Source indices and weights of one axis for order-1 interpolation, mode 'reflect'."""
    cc = _reflect_coordinate(cc, length)
    start = np.int64(math.floor(cc))
    i0 = start
    i1 = start + 1
    if start < 0 or start + 1 >= length:
        i0 = np.int64(_reflect_coordinate(np.float64(i0), length))
        i1 = np.int64(_reflect_coordinate(np.float64(i1), length))
    x = cc - math.floor(cc)
    w0 = 1.0 - x
    w1 = 1.0 - w0
    return i0, i1, w0, w1, cc > -1.0


@njit(cache=True)
def map_coordinates_linear_reflect(image, dx, dy):
    """``map_coordinates(image, (row + dy, col + dx, channel), order=1, mode='reflect')``.

    ``image`` is (H, W, C) float32, ``dx``/``dy`` are (H, W) float32 displacements; the
    coordinates are formed in float64 as numpy does for ``int64 + float32``.  The channel
    coordinate is an integer, so its taps have weights 1 and 0 and only the first counts.
    """
    height, width, channels = image.shape
    out = np.empty_like(image)
    for i in range(height):
        for j in range(width):
            y0, y1, a0, a1, ok_y = _linear_taps(np.float64(i) + np.float64(dy[i, j]), height)
            x0, x1, b0, b1, ok_x = _linear_taps(np.float64(j) + np.float64(dx[i, j]), width)
            for c in range(channels):
                if not (ok_y and ok_x):
                    out[i, j, c] = 0.0
                    continue
                t = 0.0
                t += (np.float64(image[y0, x0, c]) * a0) * b0
                t += (np.float64(image[y0, x1, c]) * a0) * b1
                t += (np.float64(image[y1, x0, c]) * a1) * b0
                t += (np.float64(image[y1, x1, c]) * a1) * b1
                out[i, j, c] = t
    return out
