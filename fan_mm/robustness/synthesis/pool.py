"""Running a synthesis: the plan of units (image, corruption, severity, seed), sharding over
machines, the worker pool on one machine, and ``synthesize``, which ties them together."""
import hashlib
import logging
import os
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2

from .. import codec, protocol
from ..codec import InputError
from .journal import Journal, atomic_write_file, check_settings, done_units, settings_for
from .layouts import Source, SynthesisError, check_names, resolve_source, unit_out_rel
from .manifest import finalize

logger = logging.getLogger(__name__)

__all__ = ['SynthesisResult', 'parse_shard', 'synthesize']


def parse_shard(text: str) -> Tuple[int, int]:
    """``'I/N'`` -> (I, N), with 0 <= I < N (Slurm: ``--array=0-$((N-1))``)."""
    try:
        i, n = (int(v) for v in str(text).split('/'))
    except ValueError:
        raise SynthesisError(f'--shard {text!r}: expected I/N, e.g. 0/4') from None
    if n < 1 or not 0 <= i < n:
        raise SynthesisError(f'--shard {text!r}: need 0 <= I < N (shards are numbered from 0)')
    return i, n


_WORKER: dict = {}


def _worker_init(src_root: str, image_dir: str, dst: str, settings: dict, limit_threads: bool = True) -> None:
    if limit_threads:  # worker processes only: parallelism is over images, nested pools oversubscribe
        cv2.setNumThreads(1)
        try:
            from threadpoolctl import threadpool_limits
            threadpool_limits(1)
        except ImportError:
            pass
    _WORKER.clear()
    _WORKER.update(source=Source(src_root, settings['layout'], image_dir, []), dst=dst, settings=settings,
                   cache=None)


def _load_source(key: str):
    """(bgr, notes, sha256) for ``key``; the last image is cached (units come image by image)."""
    cache = _WORKER.get('cache')
    if cache is not None and cache[0] == key:
        if isinstance(cache[1], Exception):
            raise cache[1]
        return cache[1]
    path = _WORKER['source'].path(key)
    try:
        try:
            with open(path, 'rb') as f:
                buf = f.read()
        except OSError as e:
            raise InputError(f'{path}: cannot read ({e.strerror})') from None
        img, notes = codec.decode_image(buf, path)
        value = (img, notes, hashlib.sha256(buf).hexdigest())
    except InputError as e:
        _WORKER['cache'] = (key, e)
        raise
    _WORKER['cache'] = (key, value)
    return value


def _work(unit: Tuple[str, str, int, int]) -> dict:
    """Corrupt and write one (key, corruption, severity, seed); return its journal record."""
    key, corruption, severity, seed = unit
    settings, source, dst = _WORKER['settings'], _WORKER['source'], _WORKER['dst']
    record = dict(k=key, c=corruption, s=severity, seed=seed)
    try:
        img, notes, src_sha = _load_source(key)
        strict = settings.get('_strict', False)
        if strict and notes:
            raise InputError(f'{source.path(key)}: {", ".join(notes)} input (strict mode accepts only '
                             '8-bit RGB/BGR images)')
        data = codec.corrupt_and_encode(img, corruption, severity, seed, settings['channel_order'],
                                        settings['format'], settings.get('png_compression', 6),
                                        settings.get('jpeg_quality', 95))
        out_rel = unit_out_rel(source, key, corruption, severity, settings['format'])
        atomic_write_file(osp.join(dst, *out_rel.split('/')), data)
        record.update(out=out_rel, size=len(data), sha256=hashlib.sha256(data).hexdigest(), src_sha256=src_sha)
        if notes:
            record['notes'] = notes
    except InputError as e:
        record.update(error=str(e), input_error=True)
    except Exception as e:  # noqa: BLE001 - reported by name; the other units carry on
        record.update(error=f'{source.path(key)}: {corruption} severity {severity}: '
                            f'{type(e).__name__}: {e}')
    return record


@dataclass
class SynthesisResult:
    """What a ``synthesize`` call did; ``ok`` is False when any unit failed."""
    dst: str
    shard: Tuple[int, int]
    planned: int  # units of this shard
    skipped: int  # already done before this run
    written: int
    failures: Dict[str, str]  # source path -> first error
    converted: Dict[str, List[str]]  # source path -> conversions applied (grey, alpha ...)
    complete_pairs: List[Tuple[str, int]]
    incomplete_pairs: List[Tuple[str, int]]

    @property
    def ok(self) -> bool:
        return not self.failures


def _plan(source: Source, plan: Dict[str, List[int]], base_seed: int,
          shard: Tuple[int, int]) -> List[Tuple[str, str, int, int]]:
    """All units of this shard in image-major order (consecutive units share the decoded image).

    Unit (image i, pair p) goes to shard ``(i + p) % N``: every pair is spread over all
    shards, so a slow corruption (glass_blur) or severity does not land on one shard.
    """
    pairs = [(c, s) for c, sevs in plan.items() for s in sevs]
    units = []
    for i, key in enumerate(source.keys):
        for p, (corruption, s) in enumerate(pairs):
            if (i + p) % shard[1] == shard[0]:
                units.append((key, corruption, s, protocol.image_seed(key, corruption, s, base_seed)))
    return units


def synthesize(src: str, dst: str, suite: str, corruptions: Optional[Sequence[str]] = None,
               policy: Optional[str] = None, severities: Optional[Sequence[int]] = None, seed: int = 0,
               workers: int = 1, shard: Tuple[int, int] = (0, 1), layout: str = 'auto', split: str = 'val',
               image_dir: Optional[str] = None, suffixes: Optional[Sequence[str]] = None,
               channel_order: str = 'rgb', fmt: str = 'png', png_compression: int = 6, jpeg_quality: int = 95,
               strict: bool = False, progress: bool = True) -> SynthesisResult:
    """Write the corrupted copies of ``src`` into ``dst`` (see ``fan_mm.robustness.synthesis``).

    ``suite``/``corruptions``/``policy``/``severities`` choose the (corruption, severity)
    pairs as in ``protocol.severity_plan``. Running it again finishes what is missing; a
    destination may be extended with more corruptions or severities later, but its seed,
    channel order and format are fixed by the first run.

    With ``workers > 1`` the worker processes start from a fork server (see below), which
    imports the calling script as ``__mp_main__``: a script that calls this needs the usual
    ``if __name__ == '__main__':`` guard around the call.
    """
    seed = protocol.check_seed(seed)
    if workers < 0:
        raise SynthesisError(f'workers must be >= 0, got {workers}')
    protocol.check_channel_order(channel_order)
    codec.check_format(fmt)
    _, n = shard
    if not 0 <= shard[0] < n:
        raise SynthesisError(f'shard {shard}: need 0 <= I < N')
    policy_label, plan = protocol.severity_plan(suite, corruptions, policy, severities)
    source = resolve_source(src, layout, split, image_dir, suffixes)
    src_abs, dst_abs = osp.realpath(source.root), osp.realpath(dst)
    if dst_abs == src_abs or dst_abs.startswith(src_abs + os.sep):
        raise SynthesisError(f'destination {dst!r} must not lie inside the source {src!r}')
    check_names(source, fmt)
    dst = osp.abspath(dst)
    settings = settings_for(source, seed, channel_order, fmt, png_compression, jpeg_quality)
    check_settings(dst, settings)

    units = _plan(source, plan, int(seed), shard)
    done, _ = done_units(dst)
    pending = [u for u in units if u[:3] not in done]
    skipped = len(units) - len(pending)
    logger.info('%s: %d images x %d (corruption, severity) pairs; shard %d/%d has %d units, %d already done',
                dst, len(source.keys), sum(len(v) for v in plan.values()), shard[0], shard[1], len(units), skipped)

    worker_settings = dict(settings, _strict=bool(strict))
    failures: Dict[str, str] = {}
    converted: Dict[str, List[str]] = {}
    written = 0
    journal = Journal(dst, shard) if pending else None
    bar = None
    if pending and progress:
        from tqdm import tqdm
        bar = tqdm(total=len(pending), unit='img', desc=f'{osp.basename(dst) or dst} shard {shard[0]}/{n}',
                   dynamic_ncols=True, smoothing=0.05, file=sys.stderr)

    def handle(record: dict) -> None:
        nonlocal written
        path = source.path(record['k'])
        if 'error' in record:
            failures.setdefault(path, record['error'])
            if record.get('input_error'):
                record = {k: v for k, v in record.items() if k != 'input_error'}
        else:
            written += 1
            if record.get('notes'):
                converted.setdefault(path, record['notes'])
        journal.add(record)
        if bar is not None:
            bar.update(1)

    try:
        if pending and workers <= 1:
            _worker_init(source.root, source.image_dir, dst, worker_settings, limit_threads=False)
            for unit in pending:
                handle(_work(unit))
        elif pending:
            import multiprocessing as mp
            # Not 'fork': a parent that has already run OpenMP / BLAS / OpenCV thread pools
            # (torch, numba, cv2 in the same process, e.g. inside a test session or a
            # notebook) can deadlock its forked children in their first parallel call. A
            # fork server is a fresh process that imported this module and never started
            # those pools, so forking from it is safe and cheap.
            if 'forkserver' in mp.get_all_start_methods():
                ctx = mp.get_context('forkserver')
                ctx.set_forkserver_preload([__name__])
            else:
                ctx = mp.get_context('spawn')
            # Small chunks keep the pool balanced while consecutive units still share an image.
            with ctx.Pool(workers, _worker_init, (source.root, source.image_dir, dst, worker_settings)) as pool:
                for record in pool.imap_unordered(_work, pending, chunksize=4):
                    handle(record)
    finally:
        if bar is not None:
            bar.close()
        if journal is not None:
            journal.close()

    for path, notes in sorted(converted.items()):
        logger.warning('%s: %s input, converted as the loader does', path, ', '.join(notes))
    for path, message in sorted(failures.items()):
        logger.error('%s', message)
    complete, incomplete = finalize(dst, source=source, plan=plan)
    return SynthesisResult(dst, tuple(shard), len(units), skipped, written, failures, converted, complete,
                           incomplete)
