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
  image's path relative to the image root (``fan_mm.robustness.protocol.image_seed``), and PNG encoding is
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
from ..codec import InputError, output_name
from .layouts import LAYOUTS, Layout, Source, SynthesisError, resolve_source
from .manifest import (MANIFEST_NAME, finalize, load_manifest, load_pair_manifest, pair_image_dir,
                       verify)
from .journal import META_DIR
from .pool import SynthesisResult, parse_shard, synthesize

__all__ = [
    'LAYOUTS', 'Layout', 'Source', 'SynthesisError', 'InputError', 'SynthesisResult', 'resolve_source',
    'output_name', 'synthesize', 'finalize', 'verify', 'load_manifest', 'load_pair_manifest', 'pair_image_dir',
    'parse_shard', 'META_DIR', 'MANIFEST_NAME',
]
