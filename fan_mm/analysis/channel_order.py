"""How much the ``bgr_legacy`` channel-order protocol changes each corruption.

Used by ``tools/analysis/channel_order_difference.py``; the tests check
:data:`fan_mm.corruptions.api.CHANNEL_ORDER_DEPENDENT` against it. Needs no torch.
"""
import numpy as np

from fan_mm.corruptions import check_image, corrupt, get_corruption_names

__all__ = ['channel_order_differences']


def channel_order_differences(image, severity=3, seed=0, corruptions=None):
    """{name: (mean, max)} of the absolute difference, in grey levels, between ``corrupt(rgb, ..., 'rgb')``
    and the ``bgr_legacy`` result of the same image's BGR array (flipped back to RGB), same seed.

    A corruption that treats the three channels alike gives exactly 0.
    """
    rgb = check_image(image)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    out = {}
    for name in corruptions or get_corruption_names('all'):
        a = corrupt(rgb, name, severity, seed=seed, channel_order='rgb').astype(np.int16)
        b = corrupt(bgr, name, severity, seed=seed, channel_order='bgr_legacy')[..., ::-1].astype(np.int16)
        d = np.abs(a - b)
        out[name] = (float(d.mean()), int(d.max()))
    return out
