"""File helpers shared by the long-running writers (toy datasets, corrupted datasets): atomic writes,
checks of written files against a manifest, and whether a process that left temporary files still runs.
"""
import hashlib
import os
import os.path as osp
import tempfile
from typing import Mapping, Optional


def atomic_write(path: str, data: bytes, tmp_path: Optional[str] = None, fsync: bool = False) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it over ``path``.

    A reader never sees a half-written ``path``; a crash leaves at most the temporary file, named
    ``tmp_path`` if given (so that a later run can recognise and remove it), else a fresh hidden name.
    ``fsync`` flushes the data to disk before the rename (survives a power loss, costs time).
    """
    directory = osp.dirname(path)
    os.makedirs(directory or '.', exist_ok=True)
    if tmp_path is None:
        fd, tmp_path = tempfile.mkstemp(prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=directory)
        f = os.fdopen(fd, 'wb')
    else:
        f = open(tmp_path, 'wb')
    try:
        with f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise


def file_problem(path: str, meta: Mapping[str, object], checksums: bool = True) -> Optional[str]:
    """What is wrong with ``path`` against its manifest entry ``meta`` (``size``, ``sha256``), or None."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return f'{path}: missing'
    if size != meta['size']:
        return f'{path}: {size} bytes, manifest says {meta["size"]}'
    if checksums:
        with open(path, 'rb') as f:
            if hashlib.sha256(f.read()).hexdigest() != meta['sha256']:
                return f'{path}: SHA-256 differs from the manifest'
    return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (a zombie, e.g. an orphaned worker that a container's
    init does not reap, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f'/proc/{pid}/stat', 'rb') as f:
            return f.read().rsplit(b')', 1)[1].split()[0] != b'Z'
    except (OSError, IndexError):
        return True
