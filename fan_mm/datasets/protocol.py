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
    'policy_severities', 'severity_plan', 'image_seed', 'corrupt_rgb', 'engine_info',
    'ProtocolError',
]


class ProtocolError(ValueError):
    """An unknown suite, corruption, policy or severity."""


def suite_names() -> List[str]:
    return list(_engine.SUITES)


def _suite(name: str):
    if name not in _engine.SUITES:
        raise ProtocolError(f'unknown suite {name!r}; choose one of {suite_names()}')
    return _engine.SUITES[name]


def suite_corruptions(suite: str) -> List[str]:
    """The corruptions of ``suite``, in the order the paper tables list them."""
    _suite(suite)
    return list(_engine.get_suite(suite))


def suite_categories(suite: str) -> Dict[str, List[str]]:
    """``{category: [corruption, ...]}`` for ``suite``, categories and members in table order."""
    _suite(suite)
    return {cat: list(names) for cat, names in _engine.suite_categories(suite).items()}


def category_of(suite: str, corruption: str) -> str:
    for cat, names in suite_categories(suite).items():
        if corruption in names:
            return cat
    raise ProtocolError(f'corruption {corruption!r} is not part of suite {suite!r} '
                        f'({suite_corruptions(suite)})')


def policy_names() -> List[str]:
    return list(_engine.POLICIES)


def policy_severities(policy: str, corruption: str) -> List[int]:
    """Severities that ``policy`` evaluates for ``corruption`` (e.g. noise-1-3: noise 1..3, rest 1..5)."""
    if policy not in _engine.POLICIES:
        raise ProtocolError(f'unknown severity policy {policy!r}; choose one of {policy_names()}')
    return [int(s) for s in _engine.policy_severities(policy, corruption)]


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
    return int(_engine.image_seed(key, corruption, int(severity), int(base_seed)))


def corrupt_rgb(image: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """``fan_mm.corruptions.corrupt`` on an RGB uint8 HxWx3 array (returns uint8 HxWx3)."""
    return _engine.corrupt(image, corruption, int(severity), seed=int(seed))


def engine_info() -> Dict[str, str]:
    """Identify the corruption code, recorded next to every result it produced."""
    info = {'engine': 'fan_mm.corruptions'}
    version = getattr(_engine, 'ENGINE_VERSION', None) or getattr(_engine, '__version__', None)
    if version is not None:
        info['engine_version'] = str(version)
    return info
