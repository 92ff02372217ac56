"""What a robustness protocol costs: CPU time and disk per image, measured, then scaled to a
dataset. Used by ``tools/analysis/benchmark_synthesis.py``; the figures are in docs/benchmarks.md
and docs/robustness.md ("Costs").

For every (corruption, severity) of a suite and policy, one image is corrupted exactly as
``make_corrupted_dataset`` does it and timed with ``time.process_time`` (CPU time of this
process: the figures hold on a loaded machine, where wall-clock time does not), then
encoded side by side as PNG (zlib level 6, the default; level 1) and JPEG quality 95 (lossy,
for comparison), and the PNG decoded again (what evaluating from disk costs per image, in
place of decoding the source). On the fly, every evaluation of every model pays the
corruption time instead.
"""
import hashlib
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from ..robustness import protocol
from ..robustness.codec import corrupt_loaded_image, encode_image
from ..utils.environment import CORRUPTION_PACKAGES, collect_environment
from .timing import timed_call

__all__ = ['measure', 'extrapolate', 'toy_image', 'print_extrapolations']

ENCODINGS = {'png6': ('png', dict(png_compression=6)), 'png1': ('png', dict(png_compression=1)),
             'jpeg95': ('jpeg', dict(jpeg_quality=95))}


_PHOTOS = ('astronaut', 'coffee', 'chelsea', 'rocket', 'immunohistochemistry', 'camera', 'brick', 'gravel')


def _photo_mosaic(size) -> np.ndarray:
    """Real photographs of ``skimage.data`` tiled at their native scale (512 px tiles), so
    that PNG sizes reflect camera texture rather than the toy scenes' flat areas."""
    from skimage import data
    w, h = size
    tiles = []
    for name in _PHOTOS:
        img = np.asarray(getattr(data, name)())
        img = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
        ih, iw = img.shape[:2]
        side = min(ih, iw, 512)
        crop = img[(ih - side) // 2:(ih - side) // 2 + side, (iw - side) // 2:(iw - side) // 2 + side]
        tiles.append(cv2.resize(crop, (512, 512), interpolation=cv2.INTER_LINEAR) if side < 512 else crop)
    cols = -(-w // 512)
    rows = -(-h // 512)
    grid = np.zeros((rows * 512, cols * 512, 3), np.uint8)
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        grid[r * 512:(r + 1) * 512, c * 512:(c + 1) * 512] = tiles[i % len(tiles)]
    return np.ascontiguousarray(grid[:h, :w])


def toy_image(kind: str, size) -> np.ndarray:
    """A deterministic test image (BGR) at ``size`` = (width, height): a toy street scene
    ('cityscapes') or shapes on a photo ('coco') from ``fan_mm.datasets.toy``, or a mosaic of
    real photographs ('photos')."""
    from fan_mm.datasets.toy import render_cityscapes_sample, render_coco_sample
    if kind == 'photos':
        return np.ascontiguousarray(_photo_mosaic(size)[..., ::-1])
    if kind == 'cityscapes':
        rgb = render_cityscapes_sample(0, 'val', 0, tuple(size))[0]
    elif kind == 'coco':
        rgb = render_coco_sample(0, 'val', 0, tuple(size)).image
    else:
        raise ValueError(f"kind must be 'cityscapes', 'coco' or 'photos', got {kind!r}")
    return np.ascontiguousarray(rgb[..., ::-1])


def _cpu(fn, *args, **kwargs):
    """``(output, CPU seconds)`` of one call."""
    seconds, out = timed_call(lambda: fn(*args, **kwargs), clock='cpu')
    return out, seconds


def measure(img_bgr: np.ndarray, suite: str, policy: Optional[str] = None,
            severities: Optional[Sequence[int]] = None, corruptions: Optional[Sequence[str]] = None,
            seed: int = 0, progress=None) -> dict:
    """Time and size every (corruption, severity) on ``img_bgr``; returns a JSON-able dict."""
    policy_label, plan = protocol.severity_plan(suite, corruptions, policy, severities)
    clean = {}
    for name, (fmt, kw) in ENCODINGS.items():
        data, t_enc = _cpu(encode_image, img_bgr, fmt, **kw)
        _, t_dec = _cpu(cv2.imdecode, np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        clean[name] = dict(bytes=len(data), encode_s=t_enc, decode_s=t_dec)
    # Warm-up: numba kernels load (or compile) on the first call of each corruption.
    for c in plan:
        corrupt_loaded_image(img_bgr[:64, :64].copy(), c, 1, 0)
    rows: List[dict] = []
    for c, sevs in plan.items():
        for s in sevs:
            out, t_corrupt = _cpu(corrupt_loaded_image, img_bgr, c, s, protocol.image_seed('bench', c, s, seed))
            row = dict(corruption=c, severity=s, corrupt_s=t_corrupt)
            for name, (fmt, kw) in ENCODINGS.items():
                data, t_enc = _cpu(encode_image, out, fmt, **kw)
                _, t_hash = _cpu(hashlib.sha256, data)
                _, t_dec = _cpu(cv2.imdecode, np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                row[name] = dict(bytes=len(data), encode_s=t_enc, hash_s=t_hash, decode_s=t_dec)
            rows.append(row)
            if progress is not None:
                progress(row)
    return dict(suite=suite, policy=policy_label, size=[int(img_bgr.shape[1]), int(img_bgr.shape[0])],
                clean=clean, rows=rows, engine=protocol.engine_info(),
                environment=collect_environment(('fan_mm',) + CORRUPTION_PACKAGES))


def extrapolate(result: dict, num_images: int, encoding: str = 'png6',
                plan: Optional[Dict[str, List[int]]] = None) -> Dict[str, float]:
    """Scale one image's measurements to ``num_images`` images of the same size and content,
    over the measured (corruption, severity) pairs or the subset ``plan`` of them."""
    rows = result['rows']
    if plan is not None:
        measured = {(r['corruption'], r['severity']) for r in rows}
        missing = [f'{c}/{s}' for c, sevs in plan.items() for s in sevs if (c, s) not in measured]
        if missing:
            raise ValueError(f'not measured: {missing}')
        rows = [r for r in rows if r['severity'] in plan.get(r['corruption'], ())]
    synth = sum(r['corrupt_s'] + r[encoding]['encode_s'] + r[encoding]['hash_s'] for r in rows)
    disk = sum(r[encoding]['bytes'] for r in rows)
    on_the_fly = sum(r['corrupt_s'] for r in rows)
    from_disk_extra = sum(r[encoding]['decode_s'] for r in rows) - len(rows) * result['clean'][encoding]['decode_s']
    return dict(variants=len(rows), cpu_hours_to_synthesize=synth * num_images / 3600,
                disk_gb=disk * num_images / 1e9, clean_gb=result['clean'][encoding]['bytes'] * num_images / 1e9,
                cpu_hours_per_evaluation_on_the_fly=on_the_fly * num_images / 3600,
                cpu_hours_per_evaluation_extra_from_disk=from_disk_extra * num_images / 3600)


def print_extrapolations(result: dict, num_images: int, also: Optional[Sequence[str]] = None,
                         print_fn=print) -> Dict[str, dict]:
    """Print and return :func:`extrapolate` for the measured plan and each ``SUITE[:POLICY]`` of ``also``,
    in every encoding."""
    plans = [(f"{result['suite']} {result['policy']} (measured)", None)]
    for item in also or []:
        suite, _, policy = item.partition(':')
        plans.append((f'{suite} {policy or "1-5"}', protocol.severity_plan(suite, policy=policy or None)[1]))
    out = {}
    for label, plan in plans:
        for enc in ENCODINGS:
            e = extrapolate(result, num_images, enc, plan)
            out[f'{label} {enc}'] = e
            print_fn(f"{label}: {num_images} images x {e['variants']} variants, {enc}: synthesis "
                     f"{e['cpu_hours_to_synthesize']:.2f} CPU-h, disk {e['disk_gb']:.1f} GB (clean "
                     f"{e['clean_gb']:.2f} GB); one evaluation on the fly "
                     f"{e['cpu_hours_per_evaluation_on_the_fly']:.2f} CPU-h of corruption, from disk "
                     f"{e['cpu_hours_per_evaluation_extra_from_disk']:+.3f} CPU-h of decoding beyond the clean PNG")
    return out
