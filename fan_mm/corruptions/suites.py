"""Corruption names, suites, categories and severity policies.

Suites (named, ordered sets of corruptions):

- ``'imagenet-c'``: the 15 benchmark corruptions of Hendrycks & Dietterich (ICLR 2019),
  1.1.2's ``get_corruption_names('common')``;
- ``'holdout'``: the 4 extra ones (1.1.2's ``'validation'``): speckle_noise, gaussian_blur,
  spatter, saturate;
- ``'all'``: all 19, in 1.1.2's order;
- ``'coco-c'``: the 15 of Michaelis et al. (2019), the same set as ``'imagenet-c'``;
- ``'cityscapes-c'``: the 16 of Kamann & Rother (CVPR 2020) as in the FAN paper's tables:
  4 noise, 4 blur, 4 weather, 4 digital (no zoom_blur, elastic_transform, pixelate).

Categories depend on the suite: ImageNet-C files brightness under *weather*, Cityscapes-C
under *digital*.

Severity policies (:func:`get_severities`):

- ``'1-5'``: all five severities;
- ``'1-3'``: severities 1-3 for every corruption (FAN's Cityscapes-C evaluation code);
- ``'noise-1-3'``: noise corruptions at 1-3, the rest at 1-5 (SegFormer / Kamann & Rother
  Cityscapes-C: 4 x 3 + 12 x 5 = 72 variants).
"""
import numbers

__all__ = ['CORRUPTION_NAMES', 'SEVERITIES', 'SUITES', 'SUITE_CATEGORIES', 'CATEGORIES',
           'NOISE', 'IMAGENET_C_CATEGORIES', 'HOLDOUT_CATEGORIES', 'CITYSCAPES_C_CATEGORIES',
           'SEVERITY_POLICIES', 'get_corruption_names', 'get_categories', 'get_category',
           'get_severities', 'check_corruption', 'check_severity', 'check_suite']

# imagecorruptions 1.1.2's order (its corruption_tuple); 15-18 are the hold-out ones.
CORRUPTION_NAMES = (
    'gaussian_noise', 'shot_noise', 'impulse_noise',
    'defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur',
    'snow', 'frost', 'fog', 'brightness',
    'contrast', 'elastic_transform', 'pixelate', 'jpeg_compression',
    'speckle_noise', 'gaussian_blur', 'spatter', 'saturate',
)
SEVERITIES = (1, 2, 3, 4, 5)
CATEGORIES = ('noise', 'blur', 'weather', 'digital')

IMAGENET_C_CATEGORIES = {
    'noise': ('gaussian_noise', 'shot_noise', 'impulse_noise'),
    'blur': ('defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur'),
    'weather': ('snow', 'frost', 'fog', 'brightness'),
    'digital': ('contrast', 'elastic_transform', 'pixelate', 'jpeg_compression'),
}
# The ImageNet-C paper's hold-out set has one corruption per category.
HOLDOUT_CATEGORIES = {
    'noise': ('speckle_noise',),
    'blur': ('gaussian_blur',),
    'weather': ('spatter',),
    'digital': ('saturate',),
}
CITYSCAPES_C_CATEGORIES = {
    'noise': ('gaussian_noise', 'shot_noise', 'impulse_noise', 'speckle_noise'),
    'blur': ('motion_blur', 'defocus_blur', 'glass_blur', 'gaussian_blur'),
    'weather': ('snow', 'spatter', 'fog', 'frost'),
    'digital': ('brightness', 'contrast', 'saturate', 'jpeg_compression'),
}
_ALL_CATEGORIES = {k: IMAGENET_C_CATEGORIES[k] + HOLDOUT_CATEGORIES[k] for k in CATEGORIES}

SUITE_CATEGORIES = {
    'imagenet-c': IMAGENET_C_CATEGORIES,
    'holdout': HOLDOUT_CATEGORIES,
    'all': _ALL_CATEGORIES,
    'coco-c': IMAGENET_C_CATEGORIES,
    'cityscapes-c': CITYSCAPES_C_CATEGORIES,
}
SUITES = {
    'imagenet-c': CORRUPTION_NAMES[:15],
    'holdout': CORRUPTION_NAMES[15:],
    'all': CORRUPTION_NAMES,
    'coco-c': CORRUPTION_NAMES[:15],
    'cityscapes-c': sum(CITYSCAPES_C_CATEGORIES.values(), ()),
}
# Corruptions that 'noise-1-3' limits to severities 1-3 (the noise category of every suite).
NOISE = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'speckle_noise')
SEVERITY_POLICIES = ('1-5', '1-3', 'noise-1-3')


def _did_you_mean(value, choices):
    import difflib
    close = difflib.get_close_matches(str(value), choices, n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


def check_corruption(name):
    """Return ``name`` if it is one of the 19 corruptions, else raise ValueError listing them."""
    if not isinstance(name, str) or name not in CORRUPTION_NAMES:
        raise ValueError(f'unknown corruption {name!r}{_did_you_mean(name, CORRUPTION_NAMES)}; '
                         f'valid names: {", ".join(CORRUPTION_NAMES)}')
    return name


def check_severity(severity):
    """Return ``severity`` as int if it is an integer in 1..5, else raise ValueError."""
    if (isinstance(severity, bool) or not isinstance(severity, numbers.Integral)
            or int(severity) not in SEVERITIES):
        raise ValueError(f'severity must be an integer in 1..5, got {severity!r}')
    return int(severity)


def check_suite(suite):
    if suite not in SUITES:
        raise ValueError(f'unknown suite {suite!r}{_did_you_mean(suite, list(SUITES))}; '
                         f'valid suites: {", ".join(SUITES)}')
    return suite


def get_corruption_names(suite='all', category=None):
    """Corruption names of a suite, optionally only one category, in the suite's order.

    Args:
        suite: 'imagenet-c', 'holdout', 'all', 'coco-c' or 'cityscapes-c'.
        category: None, or 'noise', 'blur', 'weather', 'digital' (as the suite files them).
    """
    names = SUITES[check_suite(suite)]
    if category is None:
        return list(names)
    if category not in CATEGORIES:
        raise ValueError(f'unknown category {category!r}; valid categories: '
                         f'{", ".join(CATEGORIES)}')
    members = SUITE_CATEGORIES[suite][category]
    return [n for n in names if n in members]


def get_categories(suite='all'):
    """``{category: [names]}`` for a suite (categories in noise/blur/weather/digital order)."""
    check_suite(suite)
    return {c: list(SUITE_CATEGORIES[suite][c]) for c in CATEGORIES}


def get_category(corruption, suite='all'):
    """The category of ``corruption`` in ``suite`` (brightness: 'weather' in ImageNet-C,
    'digital' in Cityscapes-C)."""
    check_corruption(corruption)
    for cat, members in SUITE_CATEGORIES[check_suite(suite)].items():
        if corruption in members:
            return cat
    raise ValueError(f'corruption {corruption!r} is not part of suite {suite!r}')


def get_severities(corruption, policy='1-5'):
    """Severities to evaluate for ``corruption`` under a severity ``policy``."""
    check_corruption(corruption)
    if policy == '1-5':
        return list(SEVERITIES)
    if policy == '1-3':
        return [1, 2, 3]
    if policy == 'noise-1-3':
        return [1, 2, 3] if corruption in NOISE else list(SEVERITIES)
    raise ValueError(f'unknown severity policy {policy!r}; valid policies: '
                     f'{", ".join(SEVERITY_POLICIES)}')
