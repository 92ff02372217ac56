"""Noise corruptions: gaussian_noise, shot_noise, impulse_noise, speckle_noise.

The random numbers are drawn with the same numpy legacy calls (``normal``) and shapes as
1.1.2, from a ``RandomState`` seeded with the call's seed; the element-wise arithmetic runs
in one compiled pass.  shot_noise's ``np.random.poisson`` is replayed in compiled code on the
same uniform stream with its per-grey-level set-up hoisted (:mod:`._random`).  Bit-exact.

impulse_noise is ``skimage.util.random_noise(x / 255., mode='s&p', amount=c, rng=seed)``:
1.1.2 passes no ``rng``, so its output cannot be reproduced at all; fan_mm fixes the seed.
It draws the same two ``Generator.random`` arrays as scikit-image and applies the masks in
one compiled pass (scikit-image itself allocates and copies the image six times).
"""
import numpy as np
from . import _kernels as K
from ._random import shot_noise_poisson

_LUT01 = np.arange(256) / 255.   # x / 255. for every uint8 value (bit-identical)


def gaussian_noise(img, severity, rng):
    c = [.08, .12, 0.18, 0.26, 0.38][severity - 1]
    noise = rng.rs.normal(size=img.shape, scale=c)
    return K.add_noise(img, noise)


def shot_noise(img, severity, rng):
    c = [60, 25, 12, 5, 3][severity - 1]
    return shot_noise_poisson(rng.rs, img, _LUT01 * c, float(c))


def impulse_noise(img, severity, rng):
    c = [.03, .06, .09, 0.17, 0.27][severity - 1]
    # skimage.util.random_noise(x, mode='s&p', amount=c, rng=seed) for x >= 0 draws
    # flipped = rng.random(shape) <= c, then salted = rng.random(shape) <= 0.5, and sets
    # flipped & salted to 1, flipped & ~salted to 0 (the tests compare with skimage itself)
    gen = np.random.default_rng(rng.skimage_seed())
    flipped = gen.random(img.shape)
    salted = gen.random(img.shape)
    return K.salt_and_pepper(img, flipped, salted, c, 0.5)


def speckle_noise(img, severity, rng):
    c = [.15, .2, 0.35, 0.45, 0.6][severity - 1]
    noise = rng.rs.normal(size=img.shape, scale=c)
    return K.speckle(img, noise)
