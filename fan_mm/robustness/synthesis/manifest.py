"""Manifests of a corrupted dataset: ``finalize`` (per-pair and top-level manifests with every
file's SHA-256, size and seed), ``verify`` and the readers the evaluation side uses."""
import hashlib
import json
import os
import os.path as osp
import socket
from typing import Dict, List, Optional, Tuple

from fan_mm.utils.files import file_problem, pid_alive

from .journal import (META_DIR, _TMP_TAG, atomic_write_file, done_units, journal_records, journal_software,
                      json_bytes, read_json)
from .layouts import Source, SynthesisError

__all__ = ['FORMAT_NAME', 'FORMAT_VERSION', 'MANIFEST_NAME', 'load_manifest', 'load_pair_manifest',
           'pair_image_dir', 'finalize', 'verify']

FORMAT_NAME = 'fan_mm.corrupted_dataset'
FORMAT_VERSION = 1
MANIFEST_NAME = 'manifest.json'


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
        manifest = read_json(path)
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
        return read_json(path)
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
    settings = read_json(osp.join(dst, META_DIR, 'settings.json'))
    lock = _lock(dst)
    try:
        done, failed = done_units(dst)
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
                data = json_bytes(dict(format=FORMAT_NAME, corruption=c, severity=s, settings=settings,
                                        files=files))
                if not osp.exists(path) or open(path, 'rb').read() != data:
                    atomic_write_file(path, data)
                pairs.setdefault(c, {})[s] = dict(files=len(files), sha256=hashlib.sha256(data).hexdigest())
                complete.append((c, s))
        for k in keys:  # sources of images that failed or are not done yet: recorded by name only
            sources.setdefault(k, None)
        failures = sorted({(unit[0], rec['error']) for unit, rec in failed.items()})
        manifest = dict(
            format=FORMAT_NAME, format_version=FORMAT_VERSION, settings=settings,
            software=journal_software(dst), sources=dict(sorted(sources.items())),
            pairs={c: {str(s): pairs[c][s] for s in sorted(pairs[c])} for c in sorted(pairs)},
            incomplete={c: sorted(s for cc, s in incomplete if cc == c) for c in sorted({c for c, _ in incomplete})},
            failures=[dict(source=k, error=e) for k, e in failures])
        data = json_bytes(manifest)
        path = osp.join(dst, MANIFEST_NAME)
        if not osp.exists(path) or open(path, 'rb').read() != data:
            atomic_write_file(path, data)
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
    journal_pairs = {(r['c'], int(r['s'])) for r in journal_records(dst)}
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
