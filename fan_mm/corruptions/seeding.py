"""Stable per-image seeds.

``derive_seed('leftImg8bit/val/frankfurt/x.png', 'fog', 3, base_seed=0)`` hashes the key
with SHA-256, so the seed of an image depends only on what it is, never on the worker that
processes it, the order of the files or the machine: a corrupted dataset is reproducible
with any number of processes.  Pass paths relative to the dataset root (the same on every
machine).
"""
import hashlib
import numbers
import os
import pathlib

__all__ = ['derive_seed']

_DOMAIN = b'fan_mm.corruptions.derive_seed/v1'


def _encode(part):
    if isinstance(part, bool):
        raise TypeError(f'derive_seed: bool key parts are ambiguous, got {part!r}')
    if isinstance(part, numbers.Integral):
        return b'i' + str(int(part)).encode()
    if isinstance(part, str):
        return b's' + part.encode('utf-8')
    if isinstance(part, os.PathLike):
        return b's' + pathlib.PurePath(part).as_posix().encode('utf-8')
    if isinstance(part, bytes):
        return b'b' + part
    raise TypeError(f'derive_seed: key parts must be str, int, bytes or path, '
                    f'got {type(part).__name__}: {part!r}')


def derive_seed(*key, base_seed=0):
    """An integer seed in [0, 2**32) from a key, e.g. (relative path, corruption, severity).

    Args:
        *key: str, int, bytes or path-like parts; ``pathlib`` paths are written with '/'.
            Integers and their decimal strings give different seeds (1 != '1').
        base_seed: integer that changes every derived seed (the 'experiment seed').

    Returns:
        int usable as ``corrupt(..., seed=...)`` or ``np.random.RandomState(...)``.
    """
    if not key:
        raise ValueError('derive_seed needs at least one key part')
    h = hashlib.sha256(_DOMAIN)
    for part in (base_seed,) + key:
        data = _encode(part)
        h.update(len(data).to_bytes(8, 'little'))   # length prefix: no ambiguity
        h.update(data)
    return int.from_bytes(h.digest()[:4], 'little')
