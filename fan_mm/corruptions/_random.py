"""numpy's legacy ``RandomState.poisson`` for shot_noise, compiled, on the same stream.

``rs.poisson(lam)`` draws each variate with multiplication (0 < lam < 10) or Hoermann's
PTRS (lam >= 10; numpy's ``random_poisson``), consuming a variable number of uniform
doubles.  shot_noise's ``lam = x / 255. * c`` takes only 256 values, so everything that
depends on lam alone (``sqrt``, ``log``, ``exp``, the PTRS constants) is computed once per
grey level with the same expressions, and the log-gamma of small counts is tabulated; the
per-variate work is the rejection loop on uniforms drawn from the same ``RandomState``
through ``random_sample`` (the same ``next_double``).  Same operations, same glibc
``log``/``exp``/``sqrt``: the variates are bit-identical and the generator ends in the same
state as after ``rs.poisson(lam)``.

Uniforms are drawn in rounds of exactly as many as the remaining variates need at least
(two for a PTRS attempt, one for a multiplication step), so nothing is drawn that numpy
would not have drawn, and the state needs no rewinding.
"""
import math

import numpy as np
from numba import njit

__all__ = ['shot_noise_poisson']

_LOGGAM_A = np.array([8.333333333333333e-02, -2.777777777777778e-03,
                      7.936507936507937e-04, -5.952380952380952e-04,
                      8.417508417508418e-04, -1.917526917526918e-03,
                      6.410256410256410e-03, -2.955065359477124e-02,
                      1.796443723688307e-01, -1.39243221690590e+00])
_LOGGAM_TABLE = 4096     # loggam(k + 1) for k < 4096 (lam <= 255 here)


@njit(cache=True)
def _loggam(x, a):
    """numpy's ``random_loggam`` (SPECFUN log-gamma)."""
    if x == 1.0 or x == 2.0:
        return 0.0
    elif x < 7.0:
        n = np.int64(7 - x)
    else:
        n = 0
    x0 = x + n
    x2 = (1.0 / x0) * (1.0 / x0)
    lg2pi = 1.8378770664093453e+00
    gl0 = a[9]
    for k in range(8, -1, -1):
        gl0 *= x2
        gl0 += a[k]
    gl = gl0 / x0 + 0.5 * lg2pi + (x0 - 0.5) * math.log(x0) - x0
    if x < 7.0:
        for k in range(1, n + 1):
            gl -= math.log(x0 - 1.0)
            x0 -= 1.0
    return gl


@njit(cache=True)
def _level_tables(lam, a):
    """Per grey level: the quantities numpy computes from lam before its loops."""
    n = lam.shape[0]
    tab = np.empty((n, 8), np.float64)
    for i in range(n):
        lm = lam[i]
        tab[i, 0] = lm
        if lm >= 10:
            slam = math.sqrt(lm)
            loglam = math.log(lm)
            b = 0.931 + 2.53 * slam
            aa = -0.059 + 0.02483 * b
            invalpha = 1.1239 + 1.1328 / (b - 3.4)
            vr = 0.9277 - 3.6224 / (b - 2)
            tab[i, 1] = loglam
            tab[i, 2] = b
            tab[i, 3] = aa
            tab[i, 4] = math.log(invalpha)
            tab[i, 5] = vr
        elif lm > 0:
            tab[i, 6] = math.exp(-lm)
    loggam = np.empty(_LOGGAM_TABLE, np.float64)
    for k in range(_LOGGAM_TABLE):
        loggam[k] = _loggam(np.float64(k) + 1, a)
    return tab, loggam


@njit(cache=True)
def _fill(u, levels, tab, loggam, a, c, out, start, mult_x, mult_prod):
    """Continue the variates from ``start`` with uniforms ``u``; write
    ``np.uint8(np.clip(k / c, 0, 1) * 255)``.  A multiplication variate may straddle two
    rounds (its state ``mult_x``, ``mult_prod`` is returned); a PTRS attempt starts only
    with two uniforms at hand.  Returns (next index, uniforms used, mult_x, mult_prod,
    minimum uniforms of the finished variates)."""
    i = start
    n = out.shape[0]
    pos = 0
    nu = u.shape[0]
    done_min = 0
    while i < n:
        lv = levels[i]
        lm = tab[lv, 0]
        if lm >= 10:
            loglam = tab[lv, 1]
            b = tab[lv, 2]
            aa = tab[lv, 3]
            log_invalpha = tab[lv, 4]
            vr = tab[lv, 5]
            k = np.int64(-1)
            found = False
            while pos + 2 <= nu:
                uu = u[pos] - 0.5
                v = u[pos + 1]
                pos += 2
                us = 0.5 - abs(uu)
                k = np.int64(math.floor((2 * aa / us + b) * uu + lm + 0.43))
                if us >= 0.07 and v <= vr:
                    found = True
                    break
                if k < 0 or (us < 0.013 and v > us):
                    continue
                lg = loggam[k] if k < _LOGGAM_TABLE else _loggam(np.float64(k) + 1, a)
                if (math.log(v) + log_invalpha - math.log(aa / (us * us) + b)) <= \
                        (-lm + np.float64(k) * loglam - lg):
                    found = True
                    break
            if not found:
                return i, pos, mult_x, mult_prod, done_min
            done_min += 2
        elif lm == 0:
            k = np.int64(0)
        else:
            enlam = tab[lv, 6]
            found = False
            while pos < nu:
                mult_prod *= u[pos]
                pos += 1
                if mult_prod > enlam:
                    mult_x += 1
                else:
                    found = True
                    break
            if not found:
                return i, pos, mult_x, mult_prod, done_min
            k = mult_x
            mult_x = 0
            mult_prod = 1.0
            done_min += 1
        v = np.float64(k) / c
        if v < 0.0:
            v = 0.0
        elif v > 1.0:
            v = 1.0
        out[i] = np.uint8(v * 255.0)
        i += 1
    return i, pos, mult_x, mult_prod, done_min


@njit(cache=True)
def _min_uniforms(levels, tab):
    n = 0
    for i in range(levels.shape[0]):
        lm = tab[levels[i], 0]
        if lm >= 10:
            n += 2
        elif lm > 0:
            n += 1
    return n


def shot_noise_poisson(rs, img, lam_levels, c):
    """``np.uint8(np.clip(rs.poisson(lam_levels[img]) / float(c), 0, 1) * 255)``.

    Args:
        rs: the ``RandomState``; left as ``rs.poisson`` would leave it.
        img: uint8 array; each value selects its lam.
        lam_levels: float64 lam of each of the 256 grey levels.
        c: the divisor (float).
    """
    levels = np.ascontiguousarray(img).reshape(-1)
    tab, loggam = _level_tables(np.ascontiguousarray(lam_levels, np.float64), _LOGGAM_A)
    out = np.empty(levels.shape[0], np.uint8)
    remaining_min = _min_uniforms(levels, tab)
    i, mult_x, mult_prod = 0, 0, 1.0
    leftover = np.empty(0)
    while i < levels.shape[0]:
        need = remaining_min - leftover.shape[0]
        u = rs.random_sample(need) if need > 0 else np.empty(0)
        if leftover.shape[0]:
            u = np.concatenate([leftover, u])
        i, used, mult_x, mult_prod, done = _fill(u, levels, tab, loggam, _LOGGAM_A,
                                                 float(c), out, i, mult_x, mult_prod)
        remaining_min -= done
        leftover = u[used:]
    if leftover.shape[0]:
        raise AssertionError('shot_noise_poisson drew more uniforms than numpy would')
    return out.reshape(img.shape)
