"""The settings of a destination and its resumable journal.

``dst/.fan_mm/settings.json`` holds what fixes the bytes of every file (a destination accepts
only one set); ``dst/.fan_mm/journal/*.jsonl`` are append-only records of finished units, one
file per run and process, so a re-run does only what is missing. Files are written to a
temporary name (``_TMP_TAG``) and renamed.
"""
import json
import os
import os.path as osp
import platform
import socket
import time
from typing import Dict, Iterable, List, Tuple

from fan_mm.utils.environment import CORRUPTION_PACKAGES, package_versions
from fan_mm.utils.files import atomic_write

from .. import protocol
from .layouts import Source, SynthesisError

__all__ = ['META_DIR', 'settings_for', 'check_settings', 'Journal', 'journal_records', 'journal_software',
           'done_units', 'read_json', 'json_bytes', 'atomic_write_file']

META_DIR = '.fan_mm'
_TMP_TAG = '.fanmm-tmp-'


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) + '\n').encode('utf-8')


def atomic_write_file(path: str, data: bytes) -> None:
    """``atomic_write`` with fsync, through a temporary name that ``_remove_stale_temp_files`` knows."""
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}{_TMP_TAG}{socket.gethostname()}-{os.getpid()}')
    atomic_write(path, data, tmp_path=tmp, fsync=True)


def read_json(path: str):
    with open(path, 'rb') as f:
        return json.loads(f.read().decode('utf-8'))


# The software record is compared across runs (``journal_software``: more than one distinct record
# is a ``verify`` warning), so it holds versions only, not the environment record's date, CPU or
# thread settings, which differ from run to run. Pillow is not used by the engine; it stays in the
# record so that a run resuming a destination begun by an earlier fan_mm writes the same record.
_SOFTWARE_PACKAGES = ('fan_mm',) + CORRUPTION_PACKAGES + ('PIL',)


def _software_versions() -> Dict[str, str]:
    versions = dict(python=platform.python_version(), **package_versions(_SOFTWARE_PACKAGES))
    versions.update(protocol.engine_info())
    return versions


def settings_for(source: Source, seed: int, channel_order: str, fmt: str, png_compression: int,
              jpeg_quality: int) -> dict:
    """What fixes the bytes of every file; a destination accepts only one set of these."""
    settings = dict(layout=source.layout, image_dir=source.image_dir, seed=int(seed),
                    channel_order=channel_order, format=fmt, engine=protocol.ENGINE_NAME)
    if fmt == 'png':
        settings['png_compression'] = int(png_compression)
    else:
        settings['jpeg_quality'] = int(jpeg_quality)
    return settings


# How long a reader waits for a settings file that another process has claimed but not yet filled
# (only where the file system has no hard links, see ``_create_if_absent``).
_SETTINGS_WAIT_S = 10.0


def _create_if_absent(path: str, data: bytes) -> None:
    """Publish ``data`` at ``path`` unless a file is there already: the first writer wins and is
    never overwritten, and a reader sees all of its content or, for a moment where the file system
    has no hard links, an empty file."""
    tmp = f'{path}{_TMP_TAG}{socket.gethostname()}-{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(data)
    try:
        try:
            # Link a finished temporary file to the name: fails if another shard got there first.
            os.link(tmp, path)
            return
        except FileExistsError:
            return
        except OSError:
            pass  # no hard links here (some network, FUSE and SMB mounts): claim the name instead
        try:
            # Creating the name exclusively decides the winner as the link would; the claimed,
            # still empty file is then replaced by the finished one in one step. Readers wait
            # while it is empty (``_read_settings``).
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return
        try:
            os.replace(tmp, path)
        except OSError:
            os.unlink(path)  # the claim is ours and still empty: free the name for the next run
            raise
    finally:
        if osp.lexists(tmp):
            os.unlink(tmp)


def _read_settings(path: str) -> dict:
    """The recorded settings; waits for a file that a concurrent run has claimed but not yet filled."""
    deadline = time.monotonic() + _SETTINGS_WAIT_S
    while True:
        try:
            return read_json(path)
        except ValueError as e:
            if time.monotonic() >= deadline:
                raise SynthesisError(
                    f'{path}: empty or unreadable ({e}). If no other run is writing to this destination, '
                    'a run was killed while recording its settings: delete the file and run again.') from None
        time.sleep(0.05)


def check_settings(dst: str, settings: dict) -> None:
    """Record ``settings`` for ``dst``, or refuse when ``dst`` was made with other ones."""
    path = osp.join(dst, META_DIR, 'settings.json')
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not osp.exists(path):
        _create_if_absent(path, json_bytes(settings))  # if another shard got there first, compared below
    existing = _read_settings(path)
    if existing != json.loads(json_bytes(settings)):
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


def journal_records(dst: str) -> Iterable[dict]:
    return (rec for rec in _journal_lines(dst) if 'c' in rec)


def journal_software(dst: str) -> List[dict]:
    """The distinct software versions of the runs that wrote files (usually one)."""
    found = {json.dumps(rec['software'], sort_keys=True) for rec in _journal_lines(dst) if 'software' in rec}
    return [json.loads(v) for v in sorted(found)]


class Journal:
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


def done_units(dst: str) -> Tuple[Dict[Tuple[str, str, int], dict], Dict[Tuple[str, str, int], dict]]:
    """Successful records whose file is present with the recorded size, and the latest failures."""
    done, failed = {}, {}
    for rec in journal_records(dst):
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
