"""The reference: the installed ``imagecorruptions`` 1.1.2, patched in memory so it runs today.

imagecorruptions 1.1.2 (the last release) fails on numpy 2 / scikit-image >= 0.19 / setuptools
>= 82.  :func:`load_reference` reads the installed package's source, applies only the four
textual fixes below and executes the result as a fresh module; nothing is vendored and the
installed files are not modified.  The tests and ``tools/analysis/benchmark_corruptions.py``
compare fan_mm against this module.

The four fixes (each must match the 1.1.2 source exactly, otherwise loading fails):

1. ``multichannel=True`` -> ``channel_axis=-1`` (scikit-image >= 0.19; 3 places);
2. ``np.float_`` -> ``np.float64`` (numpy 2.0);
3. ``from scipy.ndimage.interpolation import map_coordinates`` -> ``from scipy.ndimage
   import map_coordinates`` (the old path is deprecated and slated for removal);
4. ``from pkg_resources import resource_filename`` -> a two-line shim that resolves files in
   the installed package directory (``pkg_resources`` is gone from setuptools >= 82).

``impulse_noise`` in 1.1.2 draws from scikit-image's own generator, which ``np.random.seed``
does not reach; :func:`reference_corrupt` therefore passes ``rng=seed`` to
``skimage.util.random_noise`` for that corruption, which is how fan_mm defines it.
"""
import functools
import importlib.metadata
import importlib.util
import os.path as osp
import types

import numpy as np

__all__ = ['REFERENCE_VERSION', 'imagecorruptions_dir', 'load_reference', 'reference_corrupt']

REFERENCE_VERSION = '1.1.2'

_RESOURCE_SHIM = (
    'def resource_filename(_package, _name):\n'
    '    return os.path.join(_IMAGECORRUPTIONS_DIR, _name)')

# (old text, new text, number of occurrences in 1.1.2's corruptions.py)
PATCHES = (
    ('multichannel=True', 'channel_axis=-1', 3),
    ('np.float_', 'np.float64', 1),
    ('from scipy.ndimage.interpolation import map_coordinates',
     'from scipy.ndimage import map_coordinates', 1),
    ('from pkg_resources import resource_filename', _RESOURCE_SHIM, 1),
)


def imagecorruptions_dir():
    """Directory of the installed ``imagecorruptions`` package, found without importing it
    (importing 1.1.2 fails where ``pkg_resources`` is missing).  None if not installed."""
    try:
        spec = importlib.util.find_spec('imagecorruptions')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def _read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


@functools.lru_cache(maxsize=1)
def load_reference():
    """Return the patched 1.1.2 as a module with ``corrupt``, ``get_corruption_names`` and
    the 19 corruption functions (each ``f(PIL.Image, severity)``).

    Raises:
        ImportError: imagecorruptions is not installed, is not version 1.1.2, or its source
            does not contain the expected text for one of the fixes.
    """
    pkg_dir = imagecorruptions_dir()
    if pkg_dir is None:
        raise ImportError('the reference needs imagecorruptions==1.1.2 installed '
                          '(pip install imagecorruptions==1.1.2 --no-deps)')
    version = importlib.metadata.version('imagecorruptions')
    if version != REFERENCE_VERSION:
        raise ImportError(f'the reference is imagecorruptions=={REFERENCE_VERSION}, '
                          f'found {version} in {pkg_dir}')
    source = _read(osp.join(pkg_dir, 'corruptions.py'))
    for old, new, count in PATCHES:
        found = source.count(old)
        if found != count:
            raise ImportError(f'imagecorruptions/corruptions.py: expected {count} x {old!r}, '
                              f'found {found}; the source is not the 1.1.2 release')
        source = source.replace(old, new)

    module = types.ModuleType('fan_mm_imagecorruptions_reference')
    module.__file__ = osp.join(pkg_dir, 'corruptions.py')
    module.__dict__['_IMAGECORRUPTIONS_DIR'] = pkg_dir
    exec(compile(source, module.__file__, 'exec'), module.__dict__)

    # __init__.py holds corrupt() (input checks, grey -> 3 channels, PIL conversion, uint8
    # cast); it star-imports the corruption functions, which are already in the namespace.
    init_source = _read(osp.join(pkg_dir, '__init__.py'))
    star_import = 'from .corruptions import *'
    if init_source.count(star_import) != 1:
        raise ImportError('imagecorruptions/__init__.py is not the 1.1.2 release')
    init_source = init_source.replace(star_import, 'pass')
    exec(compile(init_source, osp.join(pkg_dir, '__init__.py'), 'exec'), module.__dict__)
    return module


class _SeededSkimage(types.ModuleType):
    """Stands in for the ``sk`` name inside the reference module: ``sk.util.random_noise``
    gets ``rng=seed``, everything else is scikit-image itself."""

    def __init__(self, seed):
        import skimage
        import skimage.util
        super().__init__('skimage')
        self.color = skimage.color
        self.util = types.SimpleNamespace(
            random_noise=functools.partial(skimage.util.random_noise, rng=seed))


def reference_corrupt(image, corruption, severity, seed):
    """1.1.2's ``corrupt(image, severity, corruption_name)`` after ``np.random.seed(seed)``,
    with ``rng=seed`` for impulse_noise.  Changes numpy's global random state."""
    ref = load_reference()
    np.random.seed(seed)
    if corruption != 'impulse_noise':
        return ref.corrupt(image, severity=severity, corruption_name=corruption)
    sk = ref.__dict__['sk']
    ref.__dict__['sk'] = _SeededSkimage(seed)
    try:
        return ref.corrupt(image, severity=severity, corruption_name=corruption)
    finally:
        ref.__dict__['sk'] = sk
