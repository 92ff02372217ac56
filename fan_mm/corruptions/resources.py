"""Frost textures: where they come from and how they are loaded.

1.1.2's ``frost`` blends the image with one of the frost photographs that ship inside the
``imagecorruptions`` wheel (``imagecorruptions/frost/frost1.png`` ... ``frost6.jpg``).
fan_mm does not copy them into its own package: it reads them from the installed
``imagecorruptions`` distribution, located with ``importlib.util.find_spec`` so that 1.1.2's
module is never imported (its import fails without ``pkg_resources``).  Install it with
``pip install imagecorruptions==1.1.2 --no-deps`` (``--no-deps`` avoids pulling
``opencv-python`` next to an existing ``opencv-python-headless``).

To use another copy of the same files, point ``FAN_MM_FROST_DIR`` at a directory holding
``frost1.png`` ... ``frost6.jpg``, or call :func:`set_frost_dir`.

Images are decoded with ``cv2.imread`` exactly as 1.1.2 does (BGR; the JPEG decoder matters
for bit-exactness) and kept in memory after the first use.
"""
import functools
import os
import os.path as osp

import cv2

from .reference import imagecorruptions_dir

__all__ = ['FROST_FILES', 'frost_dir', 'set_frost_dir', 'load_frost']

# 1.1.2 lists six files but draws np.random.randint(5), so frost6.jpg is never used.
FROST_FILES = ('frost1.png', 'frost2.png', 'frost3.png', 'frost4.jpg', 'frost5.jpg',
               'frost6.jpg')
_override = None


def set_frost_dir(path):
    """Use the frost images in ``path`` (None: back to the default lookup)."""
    global _override
    _override = None if path is None else os.fspath(path)
    load_frost.cache_clear()


def frost_dir():
    """Directory of the frost images: :func:`set_frost_dir`, else ``$FAN_MM_FROST_DIR``,
    else ``<site-packages>/imagecorruptions/frost``.  Raises FileNotFoundError if none."""
    if _override is not None:
        return _override
    env = os.environ.get('FAN_MM_FROST_DIR')
    if env:
        return env
    pkg = imagecorruptions_dir()
    if pkg is None:
        raise FileNotFoundError(
            'the frost corruption needs the frost images shipped with imagecorruptions 1.1.2, '
            'which is not installed: pip install imagecorruptions==1.1.2 --no-deps, or set '
            'FAN_MM_FROST_DIR to a directory with frost1.png ... frost6.jpg')
    return osp.join(pkg, 'frost')


@functools.lru_cache(maxsize=None)
def load_frost(index):
    """Frost image ``index`` (0-5) as 1.1.2 reads it: ``cv2.imread`` -> uint8 BGR."""
    path = osp.join(frost_dir(), FROST_FILES[index])
    image = cv2.imread(path)
    if image is None:
        raise FileNotFoundError(
            f'cannot read frost image {path!r}; the frost corruption needs imagecorruptions '
            f"1.1.2's frost images (pip install imagecorruptions==1.1.2 --no-deps) or "
            f'FAN_MM_FROST_DIR pointing to a copy')
    image.setflags(write=False)
    return image
