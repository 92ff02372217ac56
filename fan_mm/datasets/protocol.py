"""The robustness protocol seen from the benchmark side: suites, categories, severity
policies, per-image seeds and the corruption call, all taken from ``fan_mm.corruptions``.

Synthesis (``fan_mm.datasets.corrupted``), the on-the-fly transform
(``fan_mm.datasets.transforms``), evaluation and reporting (``fan_mm.evaluation``) only
talk to the corruption engine through this module, so that a file written to disk and
an image corrupted in a pipeline go through exactly the same code.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fan_mm import corruptions as _engine

__all__ = [
    'suite_names', 'suite_corruptions', 'suite_categories', 'category_of', 'policy_names',
    'policy_severities', 'severity_plan', 'image_seed', 'corrupt_loaded', 'engine_info', 'CHANNEL_ORDERS',
    'ProtocolError',
]


class ProtocolError(ValueError):
    """An unknown suite, corruption, policy or severity."""


def _checked(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ValueError as e:
        raise ProtocolError(str(e)) from None


def suite_names() -> List[str]:
    return list(_engine.SUITES)


def suite_corruptions(suite: str) -> List[str]:
    """The corruptions of ``suite`` in the engine's order."""
    return _checked(_engine.get_corruption_names, suite)


def suite_categories(suite: str) -> Dict[str, List[str]]:
    """``{category: [corruption, ...]}`` for ``suite`` (brightness is *weather* in ImageNet-C
    and COCO-C, *digital* in Cityscapes-C)."""
    return {cat: list(names) for cat, names in _checked(_engine.get_categories, suite).items() if names}


def category_of(suite: str, corruption: str) -> str:
    return _checked(_engine.get_category, corruption, suite)


def policy_names() -> List[str]:
    return list(_engine.SEVERITY_POLICIES)


def policy_severities(policy: str, corruption: str) -> List[int]:
    """Severities that ``policy`` evaluates for ``corruption`` (e.g. noise-1-3: noise 1..3, rest 1..5)."""
    return [int(s) for s in _checked(_engine.get_severities, corruption, policy)]


def severity_plan(suite: str, corruptions: Optional[Sequence[str]] = None, policy: Optional[str] = None,
                  severities: Optional[Sequence[int]] = None) -> Tuple[str, Dict[str, List[int]]]:
    """Resolve what to run: ``(policy label, {corruption: [severity, ...]})``.

    ``corruptions`` defaults to the whole suite and must be a subset of it; either a named
    ``policy`` or an explicit list of ``severities`` (applied to every corruption, policy
    label ``'custom'``) may be given, not both; neither means policy ``'1-5'``.
    """
    names = suite_corruptions(suite)
    if corruptions:
        unknown = [c for c in corruptions if c not in names]
        if unknown:
            raise ProtocolError(f'corruption(s) {unknown} are not in suite {suite!r}; its corruptions are {names}')
        chosen = [c for c in names if c in set(corruptions)]  # suite order, no duplicates
    else:
        chosen = names
    if policy is not None and severities:
        raise ProtocolError('give either a severity policy or explicit severities, not both')
    if severities:
        bad = [s for s in severities if isinstance(s, bool) or not isinstance(s, (int, np.integer))
               or not 1 <= int(s) <= 5]
        if bad:
            raise ProtocolError(f'severities must be integers in 1..5, got {list(severities)}')
        sev = sorted({int(s) for s in severities})
        return 'custom', {c: list(sev) for c in chosen}
    policy = policy or '1-5'
    return policy, {c: policy_severities(policy, c) for c in chosen}


def image_seed(key: str, corruption: str, severity: int, base_seed: int = 0) -> int:
    """Seed for one (image, corruption, severity): depends only on the image's stable
    relative path ``key``, so results do not depend on worker count, order or machine."""
    return int(_engine.derive_seed(key, corruption, int(severity), base_seed=int(base_seed)))


CHANNEL_ORDERS = ('rgb', 'bgr_legacy')


def corrupt_loaded(image: np.ndarray, corruption: str, severity: int, seed: int, channel_order: str = 'rgb',
                   img_order: str = 'bgr') -> np.ndarray:
    """``fan_mm.corruptions.corrupt`` on an image laid out in ``img_order`` ('bgr' as mmcv
    loads it, or 'rgb'); the result has the same layout.

    ``channel_order`` is the protocol: ``'rgb'`` corrupts the image as RGB (the engine's
    convention); ``'bgr_legacy'`` corrupts the BGR array as if it were RGB, which is what
    mmdet's ``Corrupt`` transform (and so the published COCO-C numbers) did.
    """
    if channel_order not in CHANNEL_ORDERS:
        raise ProtocolError(f'channel order must be one of {CHANNEL_ORDERS}, got {channel_order!r}')
    if img_order not in ('rgb', 'bgr'):
        raise ProtocolError(f"image channel order must be 'rgb' or 'bgr', got {img_order!r}")
    if img_order == 'bgr':
        return _engine.corrupt(image, corruption, int(severity), seed=int(seed),
                               channel_order='bgr' if channel_order == 'rgb' else 'bgr_legacy')
    if channel_order == 'rgb':
        return _engine.corrupt(image, corruption, int(severity), seed=int(seed), channel_order='rgb')
    out = _engine.corrupt(np.ascontiguousarray(image[..., ::-1]), corruption, int(severity), seed=int(seed),
                          channel_order='bgr_legacy')
    return np.ascontiguousarray(out[..., ::-1])


ENGINE_NAME = 'fan_mm.corruptions (imagecorruptions 1.1.2 numerics)'


def engine_info() -> Dict[str, str]:
    """Identify the corruption code (version and a digest of its source files), recorded
    next to every file and result it produced."""
    import hashlib
    import os
    import os.path as osp

    from fan_mm.version import __version__
    folder = osp.dirname(osp.abspath(_engine.__file__))
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith('.py'):
            with open(osp.join(folder, name), 'rb') as f:
                h.update(name.encode() + b'\0' + f.read())
    return {'engine': ENGINE_NAME, 'engine_version': __version__, 'engine_source_sha256': h.hexdigest()}
