"""Synthesising corrupted copies of a dataset (Cityscapes-C, COCO-C, ADE20K-C, any folder).

``synthesize(src, dst, suite=...)`` writes ``dst/<corruption>/<severity>/<path relative to
src>`` for every image of ``src`` and every (corruption, severity) of the protocol.

What it guarantees, unlike the public generators (see docs/robustness.md):

* **Same pixels as the evaluation loader.** Images are decoded exactly as mmcv's
  ``LoadImageFromFile`` decodes them (``cv2.imdecode(..., IMREAD_COLOR)``: BGR, 8 bit, EXIF
  orientation applied, grey/alpha/16-bit converted), so a -C image on disk equals what the
  on-the-fly ``CorruptImage`` transform produces in a pipeline, bit for bit.
* **Lossless by default**: PNG output. A source that is not PNG (COCO's JPEGs) is written
  as ``<stem>.png``; ``output_name`` is the one rule the evaluation side uses to find it.
* **Deterministic**: every (image, corruption, severity) has its own seed derived from the
  image's path relative to the image root (``protocol.image_seed``), and PNG encoding is
  deterministic, so files are byte-identical whatever the worker count, shard or order.
* **Resumable and crash-safe**: each file is written to a temporary name and renamed;
  finished files are recorded in an append-only journal per run (``dst/.fan_mm/journal``);
  a re-run does only what is missing. When a (corruption, severity) is complete, its
  manifest ``dst/<c>/<s>/manifest.json`` lists every file with SHA-256, size and seed;
  ``dst/manifest.json`` holds the settings, software versions, sources and the pairs.
* **Parallel and sharded**: worker processes on one machine, ``shard=(i, n)`` for several
  machines (units are dealt round-robin, so shards are balanced and disjoint).
* **Bad inputs** (unreadable, truncated, too small) are reported by name and skipped, the
  rest carries on; odd inputs (grey, alpha, palette, 16 bit) are converted the way the
  loader converts them and reported (``strict=True`` makes them failures too).
"""
import hashlib
import json
import logging
import os
import os.path as osp
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..utils import image_io
from ..utils.files import atomic_write, file_problem, pid_alive
from ..utils.image_io import IMAGE_EXTENSIONS
from . import protocol

logger = logging.getLogger(__name__)

__all__ = [
    'LAYOUTS', 'Layout', 'Source', 'SynthesisError', 'InputError', 'SynthesisResult', 'resolve_source',
    'output_name', 'decode_image', 'encode_image', 'corrupt_loaded_image', 'synthesize', 'finalize',
    'verify', 'load_manifest', 'load_pair_manifest', 'pair_image_dir', 'parse_shard', 'META_DIR',
    'MANIFEST_NAME',
]

FORMAT_NAME = 'fan_mm.corrupted_dataset'
FORMAT_VERSION = 1
META_DIR = '.fan_mm'
MANIFEST_NAME = 'manifest.json'
OUTPUT_FORMATS = {'png': '.png', 'jpeg': '.jpg'}
# imagecorruptions' own lower limit (its frost crops and zoom factors assume it).
MIN_SIDE = 32
_TMP_TAG = '.fanmm-tmp-'


class SynthesisError(RuntimeError):
    """The request cannot be carried out (bad source, destination or settings)."""


class InputError(ValueError):
    """One source image cannot be used; the message names the file."""


# ----------------------------------------------------------------------------- layouts


@dataclass(frozen=True)
class Layout:
    """Where a dataset keeps its evaluation images, relative to its root.

    ``image_dir`` may contain ``{split}``; ``suffixes`` are the file endings that count as
    images of the split (case-insensitive); subfolders are searched when ``recursive``.
    """
    name: str
    image_dir: str
    suffixes: Tuple[str, ...]
    recursive: bool
    splits: Dict[str, str] = field(default_factory=dict)  # split name -> what goes into {split}

    def image_dir_for(self, split: str) -> str:
        return self.image_dir.format(split=self.splits.get(split, split))


LAYOUTS: Dict[str, Layout] = {
    'cityscapes': Layout('cityscapes', 'leftImg8bit/{split}', ('_leftImg8bit.png',), True),
    'coco': Layout('coco', '{split}', ('.jpg',), False, {'val': 'val2017', 'train': 'train2017',
                                                          'test': 'test2017'}),
    'ade20k': Layout('ade20k', 'images/{split}', ('.jpg',), True, {'val': 'validation', 'train': 'training'}),
    'folder': Layout('folder', '', IMAGE_EXTENSIONS, True),
}


@dataclass
class Source:
    """The images to corrupt: ``root/image_dir/key`` for each key (POSIX, sorted).

    ``key`` (the path relative to the image directory of the split) is what seeds are
    derived from; the on-the-fly transform derives the same key from the dataset's image
    prefix, which is why both produce the same pixels.
    """
    root: str
    layout: str
    image_dir: str  # relative to root, POSIX, '' for root itself
    keys: List[str]

    def path(self, key: str) -> str:
        return osp.join(self.root, *self.image_dir.split('/'), *key.split('/')) if self.image_dir \
            else osp.join(self.root, *key.split('/'))

    def rel(self, key: str) -> str:
        """Path of ``key`` relative to the source root (what the output mirrors)."""
        return f'{self.image_dir}/{key}' if self.image_dir else key


def _detect_layout(src: str, split: str) -> str:
    for name in ('cityscapes', 'coco', 'ade20k'):
        if osp.isdir(osp.join(src, *LAYOUTS[name].image_dir_for(split).split('/'))):
            return name
    return 'folder'


def _scan(directory: str, suffixes: Sequence[str], recursive: bool) -> List[str]:
    lowered = tuple(s.lower() for s in suffixes)
    keys = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.')) if recursive else []
        rel_dir = osp.relpath(dirpath, directory)
        for name in filenames:
            if name.startswith('.') or not name.lower().endswith(lowered):
                continue
            keys.append(name if rel_dir == '.' else f'{rel_dir.replace(os.sep, "/")}/{name}')
    return sorted(keys)


def resolve_source(src: str, layout: str = 'auto', split: str = 'val', image_dir: Optional[str] = None,
                   suffixes: Optional[Sequence[str]] = None) -> Source:
    """Find the images of ``src``.

    ``layout``: ``cityscapes`` (``leftImg8bit/<split>/<city>/*_leftImg8bit.png``), ``coco``
    (``<split>2017/*.jpg``), ``ade20k`` (``images/validation/*.jpg``), ``folder`` (every
    image under ``src``) or ``auto`` (the first preset whose image folder exists, else
    ``folder``). ``image_dir`` (relative to ``src``) and ``suffixes`` override the preset.
    """
    if not osp.isdir(src):
        raise SynthesisError(f'source {src!r} is not a directory')
    if layout == 'auto':
        layout = _detect_layout(src, split)
    if layout not in LAYOUTS:
        raise SynthesisError(f'unknown layout {layout!r}; choose one of {["auto", *LAYOUTS]}')
    preset = LAYOUTS[layout]
    rel = preset.image_dir_for(split) if image_dir is None else image_dir
    rel = rel.replace(os.sep, '/').strip('/')
    if rel in ('.', ''):
        rel = ''
    if rel.startswith('..') or osp.isabs(rel):
        raise SynthesisError(f'image directory {image_dir!r} must lie inside the source {src!r}')
    directory = osp.join(src, *rel.split('/')) if rel else src
    if not osp.isdir(directory):
        raise SynthesisError(f'{layout} layout: image folder {directory!r} does not exist '
                             f'(use --image-dir to point at the images relative to {src!r})')
    keys = _scan(directory, tuple(suffixes) if suffixes else preset.suffixes, preset.recursive)
    if not keys:
        raise SynthesisError(f'no images ending in {list(suffixes or preset.suffixes)} under {directory!r}')
    return Source(osp.abspath(src), layout, rel, keys)


def output_name(name: str, fmt: str = 'png') -> str:
    """File name under which a source ``name`` is stored in a -C folder of format ``fmt``.

    PNG (lossless, the default) keeps names that already end in ``.png`` and replaces any
    other extension by ``.png`` (COCO ``000000000139.jpg`` -> ``000000000139.png``);
    ``jpeg`` keeps ``.jpg``/``.jpeg`` and replaces the rest by ``.jpg``.
    """
    if fmt not in OUTPUT_FORMATS:
        raise SynthesisError(f'unknown output format {fmt!r}; choose one of {list(OUTPUT_FORMATS)}')
    stem, ext = osp.splitext(name)
    keep = ('.png',) if fmt == 'png' else ('.jpg', '.jpeg')
    return name if ext.lower() in keep else stem + OUTPUT_FORMATS[fmt]


# ----------------------------------------------------------------------------- pixels


def decode_image(buf: bytes, name: str) -> Tuple[np.ndarray, List[str]]:
    """Decode like mmcv's ``LoadImageFromFile`` (cv2 backend, ``color_type='color'``), through
    :func:`fan_mm.utils.image_io.decode_image`, the reader of every fan_mm tool.

    Returns the BGR uint8 HxWx3 array and the conversions the loader applied (``'grayscale'``,
    ``'alpha'``, ``'16-bit'`` ...); raises ``InputError`` naming ``name`` when the file is
    empty, truncated or not an image, or smaller than 32 px (imagecorruptions' minimum).
    """
    try:
        img = image_io.decode_image(buf, name)
    except image_io.ImageReadError as e:
        raise InputError(str(e)) from None
    if min(img.shape[:2]) < MIN_SIDE:
        raise InputError(f'{name}: {img.shape[1]}x{img.shape[0]} px is too small to corrupt '
                         f'(both sides must be at least {MIN_SIDE} px)')
    return img, image_io.odd_properties(buf)


def corrupt_loaded_image(img: np.ndarray, corruption: str, severity: int, seed: int,
                         channel_order: str = 'rgb', img_order: str = 'bgr') -> np.ndarray:
    """Corrupt an image as the loader produced it; the result has the same layout and dtype
    uint8 (float input holding 0..255 values, as with ``to_float32=True``, is rounded first).

    ``channel_order`` is the protocol: ``'rgb'`` (the engine's convention, the default) or
    ``'bgr_legacy'`` (mmdet's historical ``Corrupt`` transform fed the BGR array straight
    into imagecorruptions; the corruptions of ``fan_mm.corruptions.CHANNEL_ORDER_DEPENDENT``
    differ: the noises, snow, frost, spatter, brightness, saturate, jpeg_compression).
    ``img_order`` is the layout of ``img`` (mmcv loads BGR). Both synthesis and
    ``CorruptImage`` call this.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 image, got shape {img.shape}')
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8) if np.issubdtype(img.dtype, np.floating) \
            else np.clip(img, 0, 255).astype(np.uint8)
    return np.asarray(protocol.corrupt_loaded(img, corruption, severity, seed, channel_order, img_order), np.uint8)


def encode_image(img_bgr: np.ndarray, fmt: str = 'png', png_compression: int = 6,
                 jpeg_quality: int = 95) -> bytes:
    """Encode deterministically (no timestamps or metadata): PNG by default."""
    if fmt == 'png':
        params = [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)]
    elif fmt == 'jpeg':
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    else:
        raise SynthesisError(f'unknown output format {fmt!r}; choose one of {list(OUTPUT_FORMATS)}')
    ok, data = cv2.imencode(OUTPUT_FORMATS[fmt], img_bgr, params)
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {img_bgr.shape} image as {fmt}')
    return data.tobytes()


# ----------------------------------------------------------------------------- small I/O helpers


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + '\n').encode('utf-8')


def _atomic_write(path: str, data: bytes) -> None:
    """``atomic_write`` with fsync, through a temporary name that ``_remove_stale_temp_files`` knows."""
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}{_TMP_TAG}{socket.gethostname()}-{os.getpid()}')
    atomic_write(path, data, tmp_path=tmp, fsync=True)


def _read_json(path: str):
    with open(path, 'rb') as f:
        return json.loads(f.read().decode('utf-8'))


def _software_versions() -> Dict[str, str]:
    import platform

    import PIL
    import scipy
    import skimage

    from fan_mm.version import __version__
    versions = dict(fan_mm=__version__, python=platform.python_version(), numpy=np.__version__,
                    opencv=cv2.__version__, scipy=scipy.__version__, skimage=skimage.__version__,
                    pillow=PIL.__version__)
    try:
        import numba
        versions['numba'] = numba.__version__
    except ImportError:
        pass
    versions.update(protocol.engine_info())
    return versions


def parse_shard(text: str) -> Tuple[int, int]:
    """``'I/N'`` -> (I, N), with 0 <= I < N (Slurm: ``--array=0-$((N-1))``)."""
    try:
        i, n = (int(v) for v in str(text).split('/'))
    except ValueError:
        raise SynthesisError(f'--shard {text!r}: expected I/N, e.g. 0/4') from None
    if n < 1 or not 0 <= i < n:
        raise SynthesisError(f'--shard {text!r}: need 0 <= I < N (shards are numbered from 0)')
    return i, n


# ----------------------------------------------------------------------------- settings, journal


def _settings(source: Source, seed: int, channel_order: str, fmt: str, png_compression: int,
              jpeg_quality: int) -> dict:
    """What fixes the bytes of every file; a destination accepts only one set of these."""
    settings = dict(layout=source.layout, image_dir=source.image_dir, seed=int(seed),
                    channel_order=channel_order, format=fmt, engine=protocol.ENGINE_NAME)
    if fmt == 'png':
        settings['png_compression'] = int(png_compression)
    else:
        settings['jpeg_quality'] = int(jpeg_quality)
    return settings


def _check_settings(dst: str, settings: dict) -> None:
    """Record ``settings`` for ``dst``, or refuse when ``dst`` was made with other ones."""
    path = osp.join(dst, META_DIR, 'settings.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not osp.exists(path):
        # Create-if-absent with full content: link a finished temporary file to the name
        # (fails if another shard got there first; then its settings are compared below).
        tmp = f'{path}{_TMP_TAG}{socket.gethostname()}-{os.getpid()}'
        with open(tmp, 'wb') as f:
            f.write(_json_bytes(settings))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    existing = _read_json(path)
    if existing != json.loads(_json_bytes(settings)):
        diff = {k: (existing.get(k), settings.get(k)) for k in sorted(set(existing) | set(settings))
                if existing.get(k) != settings.get(k)}
        raise SynthesisError(
            f'{dst} was written with other settings; (recorded, requested) = {diff}. Files made with '
            'different settings cannot share a destination: choose another DST or the same settings.')


def _journal_lines(dst: str) -> Iterable[dict]:
    directory = osp.join(dst, META_DIR, 'journal')
    if not osp.isdir(directory):
        return
    for name in sorted(os.listdir(directory)):
        if not name.endswith('.jsonl'):
            continue
        with open(osp.join(directory, name), 'rb') as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a kill: that unit is redone
                if isinstance(rec, dict):
                    yield rec


def _journal_records(dst: str) -> Iterable[dict]:
    return (rec for rec in _journal_lines(dst) if 'c' in rec)


def _journal_software(dst: str) -> List[dict]:
    """The distinct software versions of the runs that wrote files (usually one)."""
    found = {json.dumps(rec['software'], sort_keys=True) for rec in _journal_lines(dst) if 'software' in rec}
    return [json.loads(v) for v in sorted(found)]


class _Journal:
    """Append-only record of finished units for one run (one file per process)."""

    def __init__(self, dst: str, shard: Tuple[int, int]):
        directory = osp.join(dst, META_DIR, 'journal')
        os.makedirs(directory, exist_ok=True)
        name = f'{socket.gethostname()}-{os.getpid()}-{time.time_ns()}-shard{shard[0]}of{shard[1]}.jsonl'
        self.path = osp.join(directory, name)
        self._f = open(self.path, 'ab')
        self._last_sync = time.monotonic()
        self.add(dict(software=_software_versions(), shard=list(shard)))

    def add(self, record: dict) -> None:
        self._f.write(json.dumps(record, sort_keys=True).encode('utf-8') + b'\n')
        self._f.flush()
        if time.monotonic() - self._last_sync > 2.0:
            os.fsync(self._f.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


def _unit_out_rel(source: Source, key: str, corruption: str, severity: int, fmt: str) -> str:
    """Output path relative to ``dst``: ``<c>/<s>/<path relative to src>`` (renamed to the format)."""
    return f'{corruption}/{severity}/{output_name(source.rel(key), fmt)}'


def _done_units(dst: str) -> Tuple[Dict[Tuple[str, str, int], dict], Dict[Tuple[str, str, int], dict]]:
    """Successful records whose file is present with the recorded size, and the latest failures."""
    done, failed = {}, {}
    for rec in _journal_records(dst):
        unit = (rec['k'], rec['c'], int(rec['s']))
        if 'error' in rec:
            failed[unit] = rec
            continue
        try:
            size = os.path.getsize(osp.join(dst, *rec['out'].split('/')))
        except OSError:
            continue
        if size == rec['size']:
            done[unit] = rec
    for unit in done:
        failed.pop(unit, None)
    return done, failed


# ----------------------------------------------------------------------------- workers

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
        img, notes = decode_image(buf, path)
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
        out = corrupt_loaded_image(img, corruption, severity, seed, settings['channel_order'])
        data = encode_image(out, settings['format'], settings.get('png_compression', 6),
                            settings.get('jpeg_quality', 95))
        out_rel = _unit_out_rel(source, key, corruption, severity, settings['format'])
        _atomic_write(osp.join(dst, *out_rel.split('/')), data)
        record.update(out=out_rel, size=len(data), sha256=hashlib.sha256(data).hexdigest(), src_sha256=src_sha)
        if notes:
            record['notes'] = notes
    except InputError as e:
        record.update(error=str(e), input_error=True)
    except Exception as e:  # noqa: BLE001 - reported by name; the other units carry on
        record.update(error=f'{source.path(key)}: {corruption} severity {severity}: '
                            f'{type(e).__name__}: {e}')
    return record


# ----------------------------------------------------------------------------- synthesis


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


def _check_names(source: Source, fmt: str) -> None:
    seen: Dict[str, str] = {}
    for key in source.keys:
        out = output_name(key, fmt)
        if out in seen:
            raise SynthesisError(f'{source.path(seen[out])} and {source.path(key)} would both be written as '
                                 f'{out!r} ({fmt} output); rename one of them or pick another --format')
        seen[out] = key


def synthesize(src: str, dst: str, suite: str, corruptions: Optional[Sequence[str]] = None,
               policy: Optional[str] = None, severities: Optional[Sequence[int]] = None, seed: int = 0,
               workers: int = 1, shard: Tuple[int, int] = (0, 1), layout: str = 'auto', split: str = 'val',
               image_dir: Optional[str] = None, suffixes: Optional[Sequence[str]] = None,
               channel_order: str = 'rgb', fmt: str = 'png', png_compression: int = 6, jpeg_quality: int = 95,
               strict: bool = False, progress: bool = True) -> SynthesisResult:
    """Write the corrupted copies of ``src`` into ``dst`` (see the module docstring).

    ``suite``/``corruptions``/``policy``/``severities`` choose the (corruption, severity)
    pairs as in ``protocol.severity_plan``. Running it again finishes what is missing; a
    destination may be extended with more corruptions or severities later, but its seed,
    channel order and format are fixed by the first run.

    With ``workers > 1`` the worker processes start from a fork server (see below), which
    imports the calling script as ``__mp_main__``: a script that calls this needs the usual
    ``if __name__ == '__main__':`` guard around the call.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise SynthesisError(f'seed must be a non-negative integer, got {seed!r}')
    if workers < 0:
        raise SynthesisError(f'workers must be >= 0, got {workers}')
    if channel_order not in protocol.CHANNEL_ORDERS:
        raise SynthesisError(f'channel order must be one of {protocol.CHANNEL_ORDERS}, got {channel_order!r}')
    if fmt not in OUTPUT_FORMATS:
        raise SynthesisError(f'unknown output format {fmt!r}; choose one of {list(OUTPUT_FORMATS)}')
    _, n = shard
    if not 0 <= shard[0] < n:
        raise SynthesisError(f'shard {shard}: need 0 <= I < N')
    policy_label, plan = protocol.severity_plan(suite, corruptions, policy, severities)
    source = resolve_source(src, layout, split, image_dir, suffixes)
    src_abs, dst_abs = osp.realpath(source.root), osp.realpath(dst)
    if dst_abs == src_abs or dst_abs.startswith(src_abs + os.sep):
        raise SynthesisError(f'destination {dst!r} must not lie inside the source {src!r}')
    _check_names(source, fmt)
    dst = osp.abspath(dst)
    settings = _settings(source, seed, channel_order, fmt, png_compression, jpeg_quality)
    _check_settings(dst, settings)

    units = _plan(source, plan, int(seed), shard)
    done, _ = _done_units(dst)
    pending = [u for u in units if u[:3] not in done]
    skipped = len(units) - len(pending)
    logger.info('%s: %d images x %d (corruption, severity) pairs; shard %d/%d has %d units, %d already done',
                dst, len(source.keys), sum(len(v) for v in plan.values()), shard[0], shard[1], len(units), skipped)

    worker_settings = dict(settings, _strict=bool(strict))
    failures: Dict[str, str] = {}
    converted: Dict[str, List[str]] = {}
    written = 0
    journal = _Journal(dst, shard) if pending else None
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


# ----------------------------------------------------------------------------- manifests


def _lock(dst: str):
    """An exclusive lock on ``dst`` for finalisation (best effort on network file systems)."""
    import fcntl
    f = open(osp.join(dst, META_DIR, 'lock'), 'a+b')
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
    except OSError:
        pass
    return f


def load_manifest(dst: str) -> dict:
    """``dst/manifest.json``; raises ``SynthesisError`` naming the file when absent or foreign."""
    path = osp.join(dst, MANIFEST_NAME)
    try:
        manifest = _read_json(path)
    except FileNotFoundError:
        raise SynthesisError(f'{path} not found: {dst} is not a finished corrupted dataset (run '
                             'tools/make_corrupted_dataset.py to write or finish it)') from None
    except (OSError, ValueError) as e:
        raise SynthesisError(f'{path}: unreadable ({e})') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT_NAME:
        raise SynthesisError(f'{path} is not a fan_mm corrupted-dataset manifest')
    return manifest


def load_pair_manifest(dst: str, corruption: str, severity: int) -> Optional[dict]:
    path = osp.join(dst, corruption, str(int(severity)), MANIFEST_NAME)
    try:
        return _read_json(path)
    except (OSError, ValueError):
        return None


def pair_image_dir(dst: str, corruption: str, severity: int) -> str:
    """The folder that replaces the dataset's image folder for one (corruption, severity)."""
    manifest = load_manifest(dst)
    image_dir = manifest['settings']['image_dir']
    base = osp.join(osp.abspath(dst), corruption, str(int(severity)))
    return osp.join(base, *image_dir.split('/')) if image_dir else base


def _remove_stale_temp_files(dst: str) -> int:
    """Remove temporary files of dead processes of this host (killed runs)."""
    host, removed = socket.gethostname(), 0
    for dirpath, dirnames, filenames in os.walk(dst):
        if osp.basename(dirpath) == 'journal':
            continue
        for name in filenames:
            if _TMP_TAG not in name:
                continue
            owner = name.rsplit(_TMP_TAG, 1)[1]
            h, _, pid = owner.rpartition('-')
            if h != host or not pid.isdigit():
                continue
            if pid_alive(int(pid)):
                continue
            try:
                os.unlink(osp.join(dirpath, name))
                removed += 1
            except OSError:
                pass
    return removed


def finalize(dst: str, source: Optional[Source] = None,
             plan: Optional[Dict[str, List[int]]] = None) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]:
    """Write the manifest of every complete (corruption, severity) and ``dst/manifest.json``.

    A pair is complete when every source image has a journalled file of the recorded
    size; a pair with a failed input stays incomplete. Returns (complete, incomplete)
    among the pairs of ``plan`` and those finished earlier. Runs under a lock, and the
    manifests' content does not depend on how the work was split or ordered, so shards
    finishing at the same time agree.
    """
    dst = osp.abspath(dst)
    settings = _read_json(osp.join(dst, META_DIR, 'settings.json'))
    lock = _lock(dst)
    try:
        done, failed = _done_units(dst)
        try:
            previous = load_manifest(dst)
        except SynthesisError:
            previous = {}
        keys = list(source.keys) if source is not None else sorted(previous.get('sources', {}))
        wanted: Dict[str, set] = {c: set(v) for c, v in (plan or {}).items()}
        for c, sevs in previous.get('pairs', {}).items():
            wanted.setdefault(c, set()).update(int(s) for s in sevs)
        sources: Dict[str, str] = {}
        pairs: Dict[str, Dict[int, dict]] = {}
        complete, incomplete = [], []
        for c in sorted(wanted):
            for s in sorted(wanted[c]):
                units = [(k, c, s) for k in keys]
                path = osp.join(dst, c, str(s), MANIFEST_NAME)
                if any(u not in done for u in units):
                    incomplete.append((c, s))
                    if osp.exists(path):  # files were deleted or sources added since
                        os.unlink(path)
                    continue
                files = {done[u]['out'].split('/', 2)[2]: dict(source=u[0], seed=done[u]['seed'],
                                                              sha256=done[u]['sha256'], size=done[u]['size'])
                         for u in units}
                for u in units:
                    sources[u[0]] = done[u]['src_sha256']
                data = _json_bytes(dict(format=FORMAT_NAME, corruption=c, severity=s, settings=settings,
                                        files=files))
                if not osp.exists(path) or open(path, 'rb').read() != data:
                    _atomic_write(path, data)
                pairs.setdefault(c, {})[s] = dict(files=len(files), sha256=hashlib.sha256(data).hexdigest())
                complete.append((c, s))
        for k in keys:  # sources of images that failed or are not done yet: recorded by name only
            sources.setdefault(k, None)
        failures = sorted({(unit[0], rec['error']) for unit, rec in failed.items()})
        manifest = dict(
            format=FORMAT_NAME, format_version=FORMAT_VERSION, settings=settings,
            software=_journal_software(dst), sources=dict(sorted(sources.items())),
            pairs={c: {str(s): pairs[c][s] for s in sorted(pairs[c])} for c in sorted(pairs)},
            incomplete={c: sorted(s for cc, s in incomplete if cc == c) for c in sorted({c for c, _ in incomplete})},
            failures=[dict(source=k, error=e) for k, e in failures])
        data = _json_bytes(manifest)
        path = osp.join(dst, MANIFEST_NAME)
        if not osp.exists(path) or open(path, 'rb').read() != data:
            _atomic_write(path, data)
        if not incomplete:
            _remove_stale_temp_files(dst)
    finally:
        lock.close()
    return complete, incomplete


def verify(dst: str, checksums: bool = True) -> List[str]:
    """Problems found in ``dst`` against its manifests (empty list: every file is intact).

    Checks each pair listed in ``dst/manifest.json``: its manifest is present and unchanged,
    covers every source, and every file it lists exists with the recorded size and (with
    ``checksums``) SHA-256. Also reports failed inputs, unfinished pairs and temporary files.
    """
    dst = osp.abspath(dst)
    try:
        manifest = load_manifest(dst)
    except SynthesisError as e:
        return [str(e)]
    problems = []
    sources = set(manifest.get('sources', {}))
    for c, sevs in manifest.get('pairs', {}).items():
        for s, summary in sevs.items():
            path = osp.join(dst, c, s, MANIFEST_NAME)
            try:
                with open(path, 'rb') as f:
                    data = f.read()
                pair = json.loads(data)
            except (OSError, ValueError):
                problems.append(f'{path}: missing or unreadable')
                continue
            if hashlib.sha256(data).hexdigest() != summary['sha256']:
                problems.append(f'{path}: differs from the checksum recorded in {MANIFEST_NAME}')
            covered = {v['source'] for v in pair['files'].values()}
            if covered != sources:
                problems.append(f'{c}/{s}: covers {len(covered)} of {len(sources)} source images')
            base = osp.join(dst, c, s)
            for rel, meta in pair['files'].items():
                problem = file_problem(osp.join(base, *rel.split('/')), meta, checksums)
                if problem:
                    problems.append(problem)
    for failure in manifest.get('failures', []):
        problems.append(f'failed input {failure["source"]}: {failure["error"]}')
    journal_pairs = {(r['c'], int(r['s'])) for r in _journal_records(dst)}
    listed = {(c, int(s)) for c, sevs in manifest.get('pairs', {}).items() for s in sevs}
    for c, s in sorted(journal_pairs - listed):
        problems.append(f'{c}/{s}: started but not finished (run the same command again to finish it)')
    if manifest.get('software') and len(manifest['software']) > 1:
        problems.append(f'files were written with {len(manifest["software"])} different software versions '
                        '(see "software" in the manifest); they may not be byte-identical to one run')
    for dirpath, _, filenames in os.walk(dst):
        for name in filenames:
            if _TMP_TAG in name:
                problems.append(f'{osp.join(dirpath, name)}: temporary file left by an interrupted run')
    return problems
