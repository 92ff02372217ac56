"""The robustness protocol: suites, categories, severity policies, per-image seeds and the
channel-order vocabulary, each checked by one function here that every caller uses.

Synthesis (``fan_mm.robustness.synthesis``), the codec (``fan_mm.robustness.codec``), the
on-the-fly transform (``fan_mm.robustness.transforms``), evaluation and reporting only talk
to the corruption engine (``fan_mm.corruptions``) through this module and the codec, so that
a file written to disk and an image corrupted in a pipeline go through the same code.

Channel order, one vocabulary under one argument name (``channel_order``) everywhere:

* ``'rgb'`` / ``'bgr'``: how an array is laid out in memory
  (:data:`fan_mm.utils.image_io.CHANNEL_ORDERS`; mmcv's loader and fan_mm's reader give
  ``'bgr'``).
* :data:`CHANNEL_ORDERS` = those two plus ``'bgr_legacy'``: what the corruption engine
  takes (``fan_mm.corruptions.corrupt(..., channel_order=...)``; this is the same tuple
  object). ``'rgb'``/``'bgr'`` name the layout of the array, which is corrupted as the RGB
  image it holds; ``'bgr_legacy'`` is a BGR array corrupted as if it were RGB, as mmdet's
  ``Corrupt`` transform and NVlabs' COCO-C / Cityscapes-C generators did.
* The protocol a corrupted dataset, a ``CorruptImage`` step and a ``robustness.json`` record
  (``--channel-order``) is how the image is seen by the corruption: :data:`PROTOCOL_CHANNEL_ORDERS`,
  ``'rgb'`` (as RGB, the engine's convention) or ``'bgr_legacy'``. ``'bgr'`` is a layout, not a
  way of seeing an image, so it is not a protocol value. :func:`engine_channel_order` maps a
  protocol value to the engine's value for a loaded (BGR) image.

Nothing here imports torch or the OpenMMLab packages.
"""
import numbers
from typing import Dict, List, Optional, Sequence, Tuple

from fan_mm import corruptions as _engine

__all__ = [
    'suite_names', 'suite_corruptions', 'suite_categories', 'category_of', 'policy_names',
    'policy_severities', 'severity_plan', 'image_seed', 'engine_info', 'check_suite', 'check_corruption',
    'check_severity', 'check_seed', 'check_channel_order', 'engine_channel_order', 'CHANNEL_ORDERS',
    'PROTOCOL_CHANNEL_ORDERS', 'ENGINE_NAME', 'ProtocolError',
]

# The engine's vocabulary, the same object: memory layouts plus 'bgr_legacy'.
CHANNEL_ORDERS = _engine.CHANNEL_ORDERS
# The values of CHANNEL_ORDERS that name a way of seeing an image, i.e. a protocol.
PROTOCOL_CHANNEL_ORDERS = tuple(o for o in CHANNEL_ORDERS if o != 'bgr')
ENGINE_NAME = 'fan_mm.corruptions (imagecorruptions 1.1.2 numerics)'


class ProtocolError(ValueError):
    """An unknown suite, corruption, policy, severity, seed or channel order."""


def _checked(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ValueError as e:
        raise ProtocolError(str(e)) from None


def check_suite(suite: str) -> str:
    return _checked(_engine.suites.check_suite, suite)


def check_corruption(corruption: str) -> str:
    return _checked(_engine.check_corruption, corruption)


def check_severity(severity) -> int:
    """``severity`` as int if it is an integer in 1..5 (the one severity check of the pipeline)."""
    return _checked(_engine.check_severity, severity)


def check_seed(seed) -> int:
    """``seed`` as int if it is a non-negative integer (a base seed of the protocol)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ProtocolError(f'seed must be a non-negative integer, got {seed!r}')
    return int(seed)


def check_channel_order(channel_order: str) -> str:
    """``channel_order`` if it is a protocol value (:data:`PROTOCOL_CHANNEL_ORDERS`)."""
    if channel_order not in PROTOCOL_CHANNEL_ORDERS:
        raise ProtocolError(f'channel_order must be one of {PROTOCOL_CHANNEL_ORDERS}, got {channel_order!r}')
    return channel_order


def engine_channel_order(channel_order: str) -> str:
    """The engine's ``channel_order`` for a loaded (BGR) image under protocol ``channel_order``:
    ``'rgb'`` -> ``'bgr'`` (corrupted as its RGB version), ``'bgr_legacy'`` -> ``'bgr_legacy'``."""
    return 'bgr' if check_channel_order(channel_order) == 'rgb' else channel_order


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
        sev = sorted({check_severity(s) for s in severities})
        return 'custom', {c: list(sev) for c in chosen}
    policy = policy or '1-5'
    return policy, {c: policy_severities(policy, c) for c in chosen}


def image_seed(key: str, corruption: str, severity: int, base_seed: int = 0) -> int:
    """Seed for one (image, corruption, severity): depends only on the image's stable
    relative path ``key``, so results do not depend on worker count, order or machine."""
    return int(_engine.derive_seed(key, corruption, int(severity), base_seed=int(base_seed)))


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
