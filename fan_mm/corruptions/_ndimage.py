"""Compiled replicas of the few scipy.ndimage routines that imagecorruptions 1.1.2 calls.

Each function reproduces the floating-point operations of scipy's C code (``ni_filters.c``,
``ni_interpolation.c``, ``ni_splines.c``) in the same order, so the results are bit-identical
to scipy's, only faster: the loops run over contiguous rows so that LLVM vectorises them, and
only the part of the output that the corruption keeps is computed.

- :func:`gaussian_filter` = ``skimage.filters.gaussian`` / ``scipy.ndimage.gaussian_filter``
  (order 0, modes ``'nearest'`` and ``'reflect'``): separable correlation along axis 0 then
  axis 1, accumulated in float64 as ``c*w0 + sum_{k=r..1} (left_k + right_k) * w_k``; the
  intermediate has the dtype of the input (float32 stays float32 between the passes).  Both
  passes run row by row in one loop, so no intermediate image is allocated.
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


_BLOCK = 512      # elements per block: the accumulator and its inputs stay in L1 cache
POST_NONE = 0     # keep the float result
POST_SCALE = 1    # np.uint8(result * 255)
POST_CLIP = 2     # np.uint8(np.clip(result, 0, 1) * 255)
_POSTS = {None: POST_NONE, 'scale255': POST_SCALE, 'clip255': POST_CLIP}


@njit(cache=True)
def _load_row(src_row, lut, use_lut, out):
    if use_lut:
        for j in range(out.shape[0]):
            out[j] = lut[np.int64(src_row[j])]
    else:
        for j in range(out.shape[0]):
            out[j] = np.float64(src_row[j])


@njit(cache=True)
def _gaussian_rows(src, lut, use_lut, w0, ext0, w1, ext1, channels, round32, post, dst):
    """Both passes of scipy's gaussian_filter, one output row at a time.

    Axis 0: ``acc = c * w0[0] + sum_{k=r..1} (up_k + down_k) * w0[k]`` over the row's
    2r+1 neighbours, which sit in a ring buffer of float64 rows (each input row is converted
    once: ``lut[u]`` for uint8 input, i.e. u / 255.).  The result is rounded to float32 if
    the input was float32 (scipy stores the intermediate in the input dtype).  Axis 1: the
    same sum along the row, padded with ``ext1``; ``post`` converts to uint8 on the way out.
    """
    height, n = src.shape
    width = n // channels
    r0 = w0.shape[0] - 1
    r1 = w1.shape[0] - 1
    nring = 2 * r0 + 1
    ring = np.empty((nring, n), np.float64)
    row = np.empty(n, np.float64)
    padded = np.empty((width + 2 * r1) * channels, np.float64)
    acc = np.empty(_BLOCK, np.float64)
    for p in range(nring - 1):
        _load_row(src[ext0[p]], lut, use_lut, ring[p % nring])
    for i in range(height):
        p = i + 2 * r0
        _load_row(src[ext0[p]], lut, use_lut, ring[p % nring])
        # axis 0 into `row`
        centre = ring[(i + r0) % nring]
        c0 = w0[0]
        for j in range(n):
            row[j] = centre[j] * c0
        for k in range(r0, 0, -1):
            a = ring[(i + r0 - k) % nring]
            b = ring[(i + r0 + k) % nring]
            wk = w0[k]
            for j in range(n):
                row[j] += (a[j] + b[j]) * wk
        if round32:
            for j in range(n):
                row[j] = np.float64(np.float32(row[j]))
        # axis 1 from the padded row
        for q in range(width + 2 * r1):
            s = ext1[q] * channels
            for c in range(channels):
                padded[q * channels + c] = row[s + c]
        out = dst[i]
        c1 = w1[0]
        for j0 in range(0, n, _BLOCK):
            m = min(_BLOCK, n - j0)
            cen = padded[j0 + r1 * channels:j0 + r1 * channels + m]
            for j in range(m):
                acc[j] = cen[j] * c1
            for k in range(r1, 0, -1):
                a = padded[j0 + (r1 - k) * channels:j0 + (r1 - k) * channels + m]
                b = padded[j0 + (r1 + k) * channels:j0 + (r1 + k) * channels + m]
                wk = w1[k]
                for j in range(m):
                    acc[j] += (a[j] + b[j]) * wk
            o = out[j0:j0 + m]
            if post == POST_NONE:
                for j in range(m):
                    o[j] = acc[j]
            elif post == POST_SCALE:
                for j in range(m):
                    o[j] = np.uint8(acc[j] * 255.0)
            else:
                for j in range(m):
                    v = acc[j]
                    if v < 0.0:
                        v = 0.0
                    elif v > 1.0:
                        v = 1.0
                    o[j] = np.uint8(v * 255.0)


_LUT01 = np.arange(256) / 255.


def gaussian_filter(image, sigma, mode='nearest', truncate=4.0, post=None):
    """``skimage.filters.gaussian(x, sigma, mode=mode, truncate=truncate,
    channel_axis=-1 if x.ndim == 3 else None)``, bit-identical.

    Args:
        image: (H, W) or (H, W, C) array; float32 / float64 is filtered as is, uint8 as
            ``image / 255.`` (float64), the way imagecorruptions calls skimage.
        sigma: scalar, or one value per spatial axis (H, W); both must be > 0.
        mode: 'nearest' (skimage's default) or 'reflect'.
        truncate: kernel radius in standard deviations.
        post: None, or fuse the usual conversion to uint8: 'scale255' for
            ``np.uint8(result * 255)``, 'clip255' for ``np.uint8(np.clip(result, 0, 1) * 255)``.

    Returns:
        A new array of the input's shape: float (float32 for float32 input, else float64),
        or uint8 with ``post``.
    """
    if image.dtype not in (np.float32, np.float64, np.uint8):
        raise TypeError(f'gaussian_filter expects uint8/float32/float64, got {image.dtype}')
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=object), (2,))
    if not all(s > 1e-15 for s in sigmas):
        # scipy would skip such an axis; corruptions never ask for it
        raise ValueError(f'gaussian_filter needs sigma > 0 on both axes, got {sigma!r}')
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    src = image.reshape(height, width * channels)
    code = _MODES[mode]
    w0 = gaussian_kernel1d(sigmas[0], truncate)
    w1 = gaussian_kernel1d(sigmas[1], truncate)
    post_code = _POSTS[post]
    if post_code != POST_NONE:
        out_dtype = np.uint8
    else:
        out_dtype = np.float32 if image.dtype == np.float32 else np.float64
    dst = np.empty(src.shape, out_dtype)
    _gaussian_rows(src, _LUT01, image.dtype == np.uint8,
                   w0, _extension_index(height, w0.shape[0] - 1, code),
                   w1, _extension_index(width, w1.shape[0] - 1, code),
                   channels, image.dtype == np.float32, post_code, dst)
    return dst.reshape(image.shape)


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
