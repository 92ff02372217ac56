"""fan_mm.corruptions: the 19 imagecorruptions (ImageNet-C) corruptions, bit-exact with
imagecorruptions 1.1.2 and fast (numba / OpenCV / numpy).  Needs numpy, OpenCV, numba and
Pillow (no torch, no mmcv); the frost textures come from the installed imagecorruptions.

    from fan_mm.corruptions import corrupt, derive_seed, get_corruption_names
    for name in get_corruption_names('cityscapes-c'):
        for severity in get_severities(name, 'noise-1-3'):
            out = corrupt(img, name, severity, seed=derive_seed(rel_path, name, severity))

See docs/corruptions.md.
"""
from .api import CHANNEL_ORDER_DEPENDENT, CHANNEL_ORDERS, MAX_SEED, MIN_SIZE, check_image, corrupt
from .resources import frost_dir, set_frost_dir
from .seeding import derive_seed
from .suites import (CATEGORIES, CITYSCAPES_C_CATEGORIES, CORRUPTION_NAMES, HOLDOUT_CATEGORIES,
                     IMAGENET_C_CATEGORIES, NOISE, SEVERITIES, SEVERITY_POLICIES,
                     SUITE_CATEGORIES, SUITES, check_corruption, check_severity,
                     get_categories, get_category, get_corruption_names, get_severities)

__all__ = [
    'corrupt', 'check_image', 'derive_seed', 'get_corruption_names', 'get_categories',
    'get_category', 'get_severities', 'check_corruption', 'check_severity', 'frost_dir',
    'set_frost_dir', 'CORRUPTION_NAMES', 'SEVERITIES', 'SUITES', 'SUITE_CATEGORIES',
    'CATEGORIES', 'NOISE', 'IMAGENET_C_CATEGORIES', 'HOLDOUT_CATEGORIES',
    'CITYSCAPES_C_CATEGORIES', 'SEVERITY_POLICIES', 'CHANNEL_ORDERS', 'CHANNEL_ORDER_DEPENDENT', 'MIN_SIZE',
    'MAX_SEED',
]
