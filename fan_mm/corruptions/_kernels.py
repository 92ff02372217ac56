"""Compiled (numba) kernels of the corruptions.

Every kernel performs the same IEEE operations, in the same order and at the same precision,
as the numpy / scikit-image expression of imagecorruptions 1.1.2 it replaces (quoted in each
docstring), so its output is bit-identical; it only fuses the element-wise passes into one
loop and skips work whose result 1.1.2 throws away.  float32 steps are kept in float32 by
passing float32 constants (numba, like C, would otherwise promote to float64).

Single-threaded on purpose (see ``_ndimage``); ``cache=True`` avoids recompiling in workers.
"""
import math

import numpy as np
from numba import njit

# ------------------------------------------------------------------ float -> uint8


@njit(cache=True, inline='always')
def _clip01(v):
    # np.clip(v, 0, 1) == minimum(maximum(v, 0), 1) for the NaN-free values used here
    if v < 0.0:
        return 0.0
    if v > 1.0:
        return 1.0
    return v


@njit(cache=True)
def unit64_to_uint8(x):
    """``np.uint8(np.clip(x, 0, 1) * 255)`` for a float64 array."""
    flat = x.ravel()
    out = np.empty(flat.shape[0], np.uint8)
    for i in range(flat.shape[0]):
        out[i] = np.uint8(_clip01(flat[i]) * 255.0)
    return out.reshape(x.shape)


@njit(cache=True)
def unit32_to_uint8(x):
    """``np.uint8(np.clip(x, 0, 1) * 255)`` for a float32 array (float32 product)."""
    flat = x.ravel()
    out = np.empty(flat.shape[0], np.uint8)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    s = np.float32(255.0)
    for i in range(flat.shape[0]):
        v = flat[i]
        if v < zero:
            v = zero
        elif v > one:
            v = one
        out[i] = np.uint8(v * s)
    return out.reshape(x.shape)


# ------------------------------------------------------------------------ noise


@njit(cache=True)
def add_noise(img, noise):
    """gaussian_noise: ``np.uint8(np.clip(x / 255. + noise, 0, 1) * 255)``."""
    u = img.ravel()
    n = noise.ravel()
    out = np.empty(u.shape[0], np.uint8)
    for i in range(u.shape[0]):
        out[i] = np.uint8(_clip01(np.float64(u[i]) / 255.0 + n[i]) * 255.0)
    return out.reshape(img.shape)


@njit(cache=True)
def speckle(img, noise):
    """speckle_noise: ``np.uint8(np.clip(x + x * noise, 0, 1) * 255)``, x = img / 255."""
    u = img.ravel()
    n = noise.ravel()
    out = np.empty(u.shape[0], np.uint8)
    for i in range(u.shape[0]):
        x = np.float64(u[i]) / 255.0
        out[i] = np.uint8(_clip01(x + x * n[i]) * 255.0)
    return out.reshape(img.shape)


@njit(cache=True)
def salt_and_pepper(img, flipped, salted, amount, salt_vs_pepper):
    """impulse_noise: skimage's s&p masks (``flipped <= amount``, ``salted <=
    salt_vs_pepper``: 1 if both, 0 if only flipped), then ``np.uint8(np.clip(x, 0, 1) *
    255)`` with x = img / 255. elsewhere."""
    u = img.ravel()
    f = flipped.ravel()
    s = salted.ravel()
    out = np.empty(u.shape[0], np.uint8)
    for i in range(u.shape[0]):
        if f[i] <= amount:
            out[i] = 255 if s[i] <= salt_vs_pepper else 0
        else:
            out[i] = np.uint8(_clip01(np.float64(u[i]) / 255.0) * 255.0)
    return out.reshape(img.shape)


# ------------------------------------------------------------------------ blur


@njit(cache=True)
def glass_shuffle(x, d, h_first, h_last, rnd):
    """glass_blur's pixel loop for rows ``h_first`` down to ``h_last`` (inclusive),
    sequential and in 1.1.2's order (rows from the bottom, columns from the right).

    ``rnd[k] = (dx, dy)`` is the k-th ``np.random.randint(-d, d, size=(2,))`` of these rows.
    1.1.2's tuple 'swap' ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` works on array views,
    so it copies x[h', w'] into x[h, w] and leaves x[h', w'] unchanged; this does the same.
    """
    width = x.shape[1]
    channels = x.shape[2]
    k = 0
    for h in range(h_first, h_last - 1, -1):
        for w in range(width - d, d, -1):
            hp = h + rnd[k, 1]
            wp = w + rnd[k, 0]
            k += 1
            for c in range(channels):
                x[h, w, c] = x[hp, wp, c]


@njit(cache=True)
def motion_blur(src, dys, dxs, kernel, out_h, out_w, to_uint8):
    """1.1.2's ``_motion_blur``: ``blurred = blurred + kernel[i] * shift(x, dx_i, dy_i)``.

    ``shift`` (np.roll plus edge replication) reads ``x[clamp(r - dy), clamp(c - dx)]``;
    the accumulation is float64 in the order of the taps.  Only ``[:out_h, :out_w]`` is
    computed (snow keeps that crop of a larger layer); clamping uses the full source size.

    Args:
        src: (H, W, C) uint8 or float array.
        to_uint8: return ``np.uint8(np.clip(blurred, 0, 255))`` (motion_blur) instead of the
            float64 sums (snow).
    """
    height, width, channels = src.shape
    n = out_w * channels
    ntaps = kernel.shape[0]
    acc = np.empty(n, np.float64)
    if to_uint8:
        out8 = np.empty((out_h, out_w, channels), np.uint8)
        out64 = np.empty((1, 1, channels), np.float64)
    else:
        out8 = np.empty((1, 1, channels), np.uint8)
        out64 = np.empty((out_h, out_w, channels), np.float64)
    for i in range(out_h):
        for j in range(n):
            acc[j] = 0.0
        for t in range(ntaps):
            kt = kernel[t]
            si = min(max(i - dys[t], 0), height - 1)
            row = src[si].ravel()
            dx = dxs[t]
            # columns whose source c - dx lies inside [0, width - 1]
            lo = min(max(dx, 0), out_w)
            hi = min(max(width - 1 + dx + 1, 0), out_w)
            if lo > hi:
                lo = hi
            for j in range(lo):
                sj = min(max(j - dx, 0), width - 1)
                for c in range(channels):
                    acc[j * channels + c] += kt * np.float64(row[sj * channels + c])
            # interior: contiguous slices and range(m) indices let LLVM vectorise
            m = (hi - lo) * channels
            a = acc[lo * channels:hi * channels]
            b = row[(lo - dx) * channels:(hi - dx) * channels]
            for jc in range(m):
                a[jc] += kt * np.float64(b[jc])
            for j in range(hi, out_w):
                sj = min(max(j - dx, 0), width - 1)
                for c in range(channels):
                    acc[j * channels + c] += kt * np.float64(row[sj * channels + c])
        if to_uint8:
            o8 = out8[i].ravel()
            for j in range(n):
                v = acc[j]
                if v < 0.0:
                    v = 0.0
                elif v > 255.0:
                    v = 255.0
                o8[j] = np.uint8(v)
        else:
            o64 = out64[i].ravel()
            for j in range(n):
                o64[j] = acc[j]
    return out8, out64


@njit(cache=True)
def zoom_blur_finish(x, acc, n):
    """``np.uint8(np.clip((x + out) / (len(c) + 1), 0, 1) * 255)`` in float32."""
    xf = x.ravel()
    af = acc.ravel()
    out = np.empty(xf.shape[0], np.uint8)
    div = np.float32(n)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    s = np.float32(255.0)
    for i in range(xf.shape[0]):
        v = (xf[i] + af[i]) / div
        if v < zero:
            v = zero
        elif v > one:
            v = one
        out[i] = np.uint8(v * s)
    return out.reshape(x.shape)


# ------------------------------------------------------------------------ colour


@njit(cache=True, inline='always')
def _rgb_to_hsv(r, g, b):
    """skimage.color.rgb2hsv for one float64 pixel (ties: blue > green > red)."""
    v = max(max(r, g), b)
    delta = v - min(min(r, g), b)
    if delta == 0.0:
        return 0.0, 0.0, v
    s = delta / v
    if b == v:
        h = 4.0 + (r - g) / delta
    elif g == v:
        h = 2.0 + (b - r) / delta
    else:
        h = (g - b) / delta
    h = h / 6.0
    # numpy's float remainder h % 1.0 = fmod(h, 1) (+1 if negative); |h| < 1 here (h is
    # in [-1/6, 5/6]), where fmod(h, 1) == h exactly
    if h < 0.0:
        h += 1.0
    elif h == 0.0:
        h = 0.0
    return h, s, v


@njit(cache=True)
def hsv_adjust(img, mode, a, b):
    """brightness (mode 0): ``V = clip(V + a, 0, 1)``; saturate (mode 1):
    ``S = clip(S * a + b, 0, 1)``; between skimage's rgb2hsv and hsv2rgb on img / 255.,
    then ``np.uint8(np.clip(rgb, 0, 1) * 255)``."""
    height, width, _ = img.shape
    out = np.empty_like(img)
    for i in range(height):
        for j in range(width):
            h, s, v = _rgb_to_hsv(np.float64(img[i, j, 0]) / 255.0,
                                  np.float64(img[i, j, 1]) / 255.0,
                                  np.float64(img[i, j, 2]) / 255.0)
            if mode == 0:
                v = _clip01(v + a)
            else:
                s = _clip01(s * a + b)
            # skimage.color.hsv2rgb
            h6 = h * 6.0
            hi = math.floor(h6)
            f = h6 - hi
            p = v * (1.0 - s)
            q = v * (1.0 - f * s)
            t = v * (1.0 - (1.0 - f) * s)
            sector = np.int64(np.uint8(hi)) % 6
            if sector == 0:
                r_, g_, b_ = v, t, p
            elif sector == 1:
                r_, g_, b_ = q, v, p
            elif sector == 2:
                r_, g_, b_ = p, v, t
            elif sector == 3:
                r_, g_, b_ = p, q, v
            elif sector == 4:
                r_, g_, b_ = t, p, v
            else:
                r_, g_, b_ = v, p, q
            out[i, j, 0] = np.uint8(_clip01(r_) * 255.0)
            out[i, j, 1] = np.uint8(_clip01(g_) * 255.0)
            out[i, j, 2] = np.uint8(_clip01(b_) * 255.0)
    return out


# ------------------------------------------------------------------------ weather


@njit(cache=True)
def frost_blend(img, frost, c0, c1):
    """``np.uint8(np.clip(c0 * x + c1 * frost, 0, 255))`` (float64, frost an RGB crop)."""
    height, width, channels = img.shape
    out = np.empty_like(img)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                v = c0 * np.float64(img[i, j, c]) + c1 * np.float64(frost[i, j, c])
                if v < 0.0:
                    v = 0.0
                elif v > 255.0:
                    v = 255.0
                out[i, j, c] = np.uint8(v)
    return out


@njit(cache=True)
def plasma_squares(maparray, stepsize, wibble, rnd):
    """plasma_fractal's fillsquares(): centre of each square = mean of corners + wibble."""
    mapsize = maparray.shape[0]
    n = mapsize // stepsize
    half = stepsize // 2
    for i in range(n):
        i1 = (i + 1) % n
        for j in range(n):
            j1 = (j + 1) % n
            # squareaccum = c + roll(c, -1, 0); squareaccum += roll(squareaccum, -1, 1)
            s0 = maparray[i * stepsize, j * stepsize] + maparray[i1 * stepsize, j * stepsize]
            s1 = maparray[i * stepsize, j1 * stepsize] + maparray[i1 * stepsize, j1 * stepsize]
            maparray[half + i * stepsize, half + j * stepsize] = (s0 + s1) / 4 + wibble * rnd[i, j]


@njit(cache=True)
def plasma_diamonds(maparray, stepsize, wibble, rnd_lt, rnd_tt):
    """plasma_fractal's filldiamonds(): the two diamond grids, in 1.1.2's order."""
    mapsize = maparray.shape[0]
    n = mapsize // stepsize
    half = stepsize // 2
    # maparray[0::step, half::step] = (dr + roll(dr, 1, 0) + (ul + roll(ul, -1, 1))) / 4 + ...
    for i in range(n):
        im = (i - 1) % n
        for j in range(n):
            j1 = (j + 1) % n
            ldr = maparray[half + i * stepsize, half + j * stepsize] + \
                maparray[half + im * stepsize, half + j * stepsize]
            lul = maparray[i * stepsize, j * stepsize] + maparray[i * stepsize, j1 * stepsize]
            maparray[i * stepsize, half + j * stepsize] = (ldr + lul) / 4 + wibble * rnd_lt[i, j]
    # maparray[half::step, 0::step] = (dr + roll(dr, 1, 1) + (ul + roll(ul, -1, 0))) / 4 + ...
    for i in range(n):
        i1 = (i + 1) % n
        for j in range(n):
            jm = (j - 1) % n
            tdr = maparray[half + i * stepsize, half + j * stepsize] + \
                maparray[half + i * stepsize, half + jm * stepsize]
            tul = maparray[i * stepsize, j * stepsize] + maparray[i1 * stepsize, j * stepsize]
            maparray[half + i * stepsize, j * stepsize] = (tdr + tul) / 4 + wibble * rnd_tt[i, j]


@njit(cache=True)
def fog_blend(img, maparray, c0):
    """fog: ``x += c0 * plasma[:H, :W, None]; np.clip(x * max_val / (max_val + c0), 0, 1)
    * 255`` with ``plasma = (m - m.min()) / (m - m.min()).max()`` over the whole map."""
    height, width, channels = img.shape
    mn = maparray.min()
    mx = -np.inf
    mapsize = maparray.shape[0]
    for i in range(mapsize):
        for j in range(mapsize):
            v = maparray[i, j] - mn
            if v > mx:
                mx = v
    max_val = np.float64(img.max()) / 255.0
    den = max_val + c0
    out = np.empty_like(img)
    for i in range(height):
        for j in range(width):
            p = c0 * ((maparray[i, j] - mn) / mx)
            for c in range(channels):
                v = np.float64(img[i, j, c]) / 255.0 + p
                out[i, j, c] = np.uint8(_clip01(v * max_val / den) * 255.0)
    return out


@njit(cache=True)
def snow_layer_finish(layer):
    """``np.round(layer * 255).astype(np.uint8) / 255.`` (round half to even)."""
    flat = layer.ravel()
    out = np.empty(flat.shape[0], np.float64)
    for i in range(flat.shape[0]):
        out[i] = np.float64(np.uint8(np.rint(flat[i] * 255.0))) / 255.0
    return out.reshape(layer.shape)


@njit(cache=True)
def snow_blend(x32, gray32, snow, c6, c6c):
    """``x = c6 * x + (1 - c6) * np.maximum(x, gray * 1.5 + 0.5)`` (float32), then
    ``np.uint8(np.clip(x + snow + np.rot90(snow, 2), 0, 1) * 255)`` (float64).

    ``c6`` and ``c6c = 1 - c6`` arrive as float32, as numpy casts the Python scalars."""
    height, width, channels = x32.shape
    out = np.empty((height, width, channels), np.uint8)
    f15 = np.float32(1.5)
    f05 = np.float32(0.5)
    for i in range(height):
        for j in range(width):
            g = gray32[i, j] * f15 + f05
            s = snow[i, j]
            sr = snow[height - 1 - i, width - 1 - j]
            for c in range(channels):
                xv = x32[i, j, c]
                m = xv if xv >= g else g
                xb = c6 * xv + c6c * m
                v = np.float64(xb) + s
                v = v + sr
                out[i, j, c] = np.uint8(_clip01(v) * 255.0)
    return out


@njit(cache=True)
def spatter_water(x32, layer, dist, c4, color):
    """spatter, severities 1-3, all in float32 as in 1.1.2 (its ``liquid_layer`` is uint8
    by then): ``m = layer * dist; m /= m.max(); m *= c4``, then
    ``np.uint8(np.clip(x + m * color, 0, 1) * 255)``.  ``c4``, ``color``: float32."""
    height, width, channels = x32.shape
    mx = np.float32(-np.inf)
    for i in range(height):
        for j in range(width):
            v = np.float32(layer[i, j]) * dist[i, j]
            if v > mx:
                mx = v
    out = np.empty((height, width, channels), np.uint8)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    s = np.float32(255.0)
    for i in range(height):
        for j in range(width):
            m = np.float32(layer[i, j]) * dist[i, j]
            m = m / mx
            m = m * c4
            for c in range(channels):
                v = x32[i, j, c] + m * color[c]
                if v != v:
                    # no liquid at all: 1.1.2 computes 0 / 0 and numpy casts NaN to 0
                    out[i, j, c] = 0
                    continue
                if v < zero:
                    v = zero
                elif v > one:
                    v = one
                out[i, j, c] = np.uint8(v * s)
    return out


@njit(cache=True)
def spatter_mud(x32, m32, color):
    """spatter, severities 4-5: ``x *= 1 - m`` (float32); ``np.uint8(np.clip(x + color * m,
    0, 1) * 255)`` (float64)."""
    height, width, channels = x32.shape
    out = np.empty((height, width, channels), np.uint8)
    one = np.float32(1.0)
    for i in range(height):
        for j in range(width):
            m = m32[i, j]
            keep = one - m
            for c in range(channels):
                xv = x32[i, j, c] * keep
                v = np.float64(xv) + color[c] * np.float64(m)
                out[i, j, c] = np.uint8(_clip01(v) * 255.0)
    return out
