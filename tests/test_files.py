"""fan_mm.utils.files: atomic writes, manifest checks, process liveness (used by the dataset writers)."""
import hashlib
import os
import subprocess
import sys

import pytest

from fan_mm.utils.files import atomic_write, file_problem, pid_alive


@pytest.mark.parametrize('named_tmp', [False, True])
def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, named_tmp):
    path = str(tmp_path / 'sub' / 'file.bin')
    tmp = str(tmp_path / 'sub' / '.file.bin.tmp-x') if named_tmp else None
    atomic_write(path, b'old content', tmp_path=tmp, fsync=named_tmp)
    with pytest.raises(TypeError):
        atomic_write(path, 'not bytes', tmp_path=tmp)  # fails inside the write, after the temp file exists
    with open(path, 'rb') as f:
        assert f.read() == b'old content'
    assert os.listdir(tmp_path / 'sub') == ['file.bin']


def test_file_problem(tmp_path):
    path = tmp_path / 'a.bin'
    path.write_bytes(b'abc')
    meta = dict(size=3, sha256=hashlib.sha256(b'abc').hexdigest())
    assert file_problem(str(path), meta) is None
    assert file_problem(str(tmp_path / 'b.bin'), meta) == f'{tmp_path / "b.bin"}: missing'
    assert file_problem(str(path), dict(meta, size=4)) == f'{path}: 3 bytes, manifest says 4'
    path.write_bytes(b'abd')
    assert file_problem(str(path), meta) == f'{path}: SHA-256 differs from the manifest'
    assert file_problem(str(path), meta, checksums=False) is None


def test_pid_alive():
    assert pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    assert not pid_alive(proc.pid)
