"""``corrupt()``: the public entry point of the corruption engine."""
import numbers

import numpy as np

from fan_mm.utils.image_io import CHANNEL_ORDERS as _LAYOUTS

from . import blur, digital, noise, weather
from .suites import check_corruption, check_severity

__all__ = ['corrupt', 'CHANNEL_ORDERS', 'CHANNEL_ORDER_DEPENDENT', 'MIN_SIZE', 'MAX_SEED']

MIN_SIZE = 32            # 1.1.2 refuses images smaller than 32 x 32
MAX_SEED = 2 ** 32 - 1   # np.random.RandomState accepts seeds in [0, 2**32)
# The memory layouts of fan_mm.utils.image_io plus one legacy protocol (the vocabulary is described in
# fan_mm.robustness.protocol). 'rgb': RGB array.  'bgr': BGR array, corrupted as its RGB version would be
# (output BGR). 'bgr_legacy': BGR array fed to the RGB code unchanged, as mmdet's Corrupt transform and
# NVlabs' COCO-C / Cityscapes-C generators did (CHANNEL_ORDER_DEPENDENT lists what that changes).
CHANNEL_ORDERS = _LAYOUTS + ('bgr_legacy',)
# The corruptions whose result differs between 'rgb' and 'bgr_legacy' (10 of the 19; 10 of the 16 of
# Cityscapes-C): the colour-dependent ones (frost's texture, snow's and jpeg's colour conversions,
# spatter's colours, saturate's and brightness's HSV rounding) and the per-element noises (the same
# random stream laid over the channels in another order). The other 9 treat the channels alike.
# Measured by tools/analysis/channel_order_difference.py; tests/test_corruptions_api.py checks it.
CHANNEL_ORDER_DEPENDENT = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'speckle_noise', 'snow', 'frost',
                           'spatter', 'brightness', 'saturate', 'jpeg_compression')

_FUNCTIONS = {
    'gaussian_noise': noise.gaussian_noise,
    'shot_noise': noise.shot_noise,
    'impulse_noise': noise.impulse_noise,
    'speckle_noise': noise.speckle_noise,
    'defocus_blur': blur.defocus_blur,
    'glass_blur': blur.glass_blur,
    'motion_blur': blur.motion_blur,
    'zoom_blur': blur.zoom_blur,
    'gaussian_blur': blur.gaussian_blur,
    'snow': weather.snow,
    'frost': weather.frost,
    'fog': weather.fog,
    'spatter': weather.spatter,
    'brightness': digital.brightness,
    'contrast': digital.contrast,
    'elastic_transform': digital.elastic_transform,
    'pixelate': digital.pixelate,
    'jpeg_compression': digital.jpeg_compression,
    'saturate': digital.saturate,
}


class _Random:
    """Random source of one call: a private ``RandomState(seed)``, or numpy's global legacy
    state when ``seed`` is None (then ``np.random.seed(s); corrupt(...)`` equals 1.1.2)."""

    def __init__(self, seed):
        self.seed = seed
        if seed is None:
            # the RandomState behind np.random.normal & co (np.random.seed seeds it)
            self.rs = np.random.random.__self__
        else:
            self.rs = np.random.RandomState(seed)

    def skimage_seed(self):
        """Seed for skimage's ``random_noise(rng=...)`` (impulse_noise).  Without a seed it
        is drawn from numpy's global state, so ``np.random.seed`` also fixes impulse_noise
        (1.1.2 used fresh OS entropy there, i.e. it was not reproducible)."""
        if self.seed is not None:
            return self.seed
        return int(self.rs.randint(0, 2 ** 31 - 1))


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f'seed must be None or an integer in [0, 2**32), got {seed!r}')
    seed = int(seed)
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f'seed must be in [0, 2**32), got {seed}')
    return seed


def check_image(image):
    """Validate an input image and return it as a C-contiguous uint8 (H, W, 3) array.

    Accepts uint8 (H, W), (H, W, 1) and (H, W, 3) arrays with H, W >= 32, as 1.1.2 does;
    grey images are repeated to 3 channels (so the result is always (H, W, 3)).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a numpy.ndarray, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise TypeError(f'image must have dtype uint8, got {image.dtype}; convert it first, '
                        f'e.g. np.clip(image, 0, 255).astype(np.uint8)')
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f'image must have shape (H, W), (H, W, 1) or (H, W, 3), '
                         f'got {image.shape}')
    height, width = image.shape[:2]
    if height < MIN_SIZE or width < MIN_SIZE:
        raise ValueError(f'image must be at least {MIN_SIZE} x {MIN_SIZE} pixels, '
                         f'got {height} x {width}')
    if image.ndim == 2:
        image = image[..., np.newaxis]
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def corrupt(image, corruption, severity, seed=None, channel_order='rgb'):
    """Corrupt ``image`` with one of the 19 imagecorruptions corruptions.

    With ``seed=s`` the result equals imagecorruptions 1.1.2's
    ``corrupt(image, severity, corruption)`` after ``np.random.seed(s)`` (1.1.2 with only
    the fixes that make it run today; see :mod:`fan_mm.corruptions.reference`), bit for bit;
    numpy's global random state is not touched.  impulse_noise is
    ``skimage.util.random_noise(image / 255., mode='s&p', amount=c, rng=s)``.
    With ``seed=None`` the random numbers come from numpy's global legacy state, as in 1.1.2.

    Args:
        image: uint8 array (H, W), (H, W, 1) or (H, W, 3), H and W >= 32.
        corruption: one of :data:`~fan_mm.corruptions.CORRUPTION_NAMES`.
        severity: integer 1..5.
        seed: None or an integer in [0, 2**32); see :func:`~fan_mm.corruptions.derive_seed`.
        channel_order: 'rgb' (default); 'bgr' for a BGR array corrupted as its RGB version
            (the result is ``corrupt(rgb)[..., ::-1]``); 'bgr_legacy' for a BGR array
            corrupted as if it were RGB, which is what mmdet's ``Corrupt`` transform did
            (the corruptions of :data:`CHANNEL_ORDER_DEPENDENT` come out differently: the
            noises, snow, frost, spatter, brightness, saturate, jpeg_compression).

    Returns:
        uint8 array (H, W, 3) in the input's channel order (grey input gives 3 channels,
        as in 1.1.2).
    """
    func = _FUNCTIONS[check_corruption(corruption)]
    severity = check_severity(severity)
    seed = _check_seed(seed)
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f'channel_order must be one of {", ".join(CHANNEL_ORDERS)}, '
                         f'got {channel_order!r}')
    img = check_image(image)
    if channel_order == 'bgr':
        img = np.ascontiguousarray(img[..., ::-1])
    out = func(img, severity, _Random(seed))
    if channel_order == 'bgr':
        out = np.ascontiguousarray(out[..., ::-1])
    return out
