"""Synthesis of corrupted datasets: layouts, determinism across workers and shards,
kill-and-resume, manifests and --verify, odd and broken inputs, bad arguments."""
import errno
import hashlib
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from fan_mm.robustness import protocol, synthesis
from fan_mm.robustness.codec import corrupt_loaded_image, output_name
from fan_mm.robustness.synthesis import SynthesisError, synthesize, verify
from fan_mm.robustness.synthesis.journal import _TMP_TAG

from .conftest import REPO, call_tool, run_tool, tree

CORRUPTIONS = ['gaussian_noise', 'frost']  # a noise and a weather one (frost differs RGB vs BGR)
SEVERITIES = [1, 3]
ARGS = dict(suite='all', corruptions=CORRUPTIONS, severities=SEVERITIES, progress=False)


def test_cityscapes_layout_keys_and_output_names(toy_city):
    source = synthesis.resolve_source(toy_city)
    assert source.layout == 'cityscapes' and source.image_dir == 'leftImg8bit/val'
    assert len(source.keys) == 4
    assert all(k.count('/') == 1 and k.endswith('_leftImg8bit.png') for k in source.keys)
    assert source.keys == sorted(source.keys)
    assert output_name('val2017/000000000139.jpg') == 'val2017/000000000139.png'
    assert output_name('a/b_leftImg8bit.png') == 'a/b_leftImg8bit.png'
    assert output_name('x.PNG') == 'x.PNG'
    assert output_name('x.jpeg', 'jpeg') == 'x.jpeg' and output_name('x.png', 'jpeg') == 'x.jpg'


def _pair_files(dst, c, s):
    return json.load(open(osp.join(dst, c, str(s), 'manifest.json')))['files']


def test_byte_identical_whatever_workers_and_shards(toy_city, tmp_path):
    one = str(tmp_path / 'one')
    result = synthesize(toy_city, one, workers=0, **ARGS)
    assert result.ok and result.written == 4 * len(CORRUPTIONS) * len(SEVERITIES)
    assert not result.incomplete_pairs and len(result.complete_pairs) == 4
    sharded = str(tmp_path / 'sharded')
    for shard, workers in (((2, 3), 2), ((0, 3), 0), ((1, 3), 1)):
        r = synthesize(toy_city, sharded, workers=workers, shard=shard, **ARGS)
        assert r.ok and r.planned < result.written
    a, b = tree(one), tree(sharded)
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a), 'files or manifests differ'
    assert verify(one) == [] and verify(sharded) == []

    # The manifest records, per file, the seed derived from the image's key and the file's checksum.
    files = _pair_files(one, 'frost', 3)
    assert len(files) == 4
    for rel, meta in files.items():
        key = rel.split('/', 2)[2]  # leftImg8bit/val/<key>
        assert meta['source'] == key
        assert meta['seed'] == protocol.image_seed(key, 'frost', 3, 0)
        data = open(osp.join(one, 'frost', '3', rel), 'rb').read()
        assert meta['sha256'] == hashlib.sha256(data).hexdigest() and meta['size'] == len(data)
        # Pixels: decode the source as the loader does, corrupt with the recorded seed.
        src = cv2.imread(osp.join(toy_city, rel), cv2.IMREAD_COLOR)
        expected = corrupt_loaded_image(src, 'frost', 3, meta['seed'])
        assert np.array_equal(cv2.imread(osp.join(one, 'frost', '3', rel), cv2.IMREAD_COLOR), expected)
        assert not np.array_equal(expected, src)
    manifest = json.load(open(osp.join(one, 'manifest.json')))
    assert manifest['settings']['seed'] == 0 and manifest['settings']['channel_order'] == 'rgb'
    assert set(manifest['sources']) == set(synthesis.resolve_source(toy_city).keys)
    assert manifest['software'][0]['numpy'] == np.__version__

    # Another base seed gives other noise; the channel order matters for frost, not for pixels' layout.
    other = str(tmp_path / 'seed1')
    synthesize(toy_city, other, seed=1, workers=0, **ARGS)
    assert tree(other)[f'gaussian_noise/1/{rel}'] != a[f'gaussian_noise/1/{rel}']
    bgr = str(tmp_path / 'bgr')
    synthesize(toy_city, bgr, channel_order='bgr_legacy', workers=0, **ARGS)
    assert tree(bgr)[f'frost/3/{rel}'] != a[f'frost/3/{rel}']


_SLOW_RUN = '''
import sys, time
from fan_mm.robustness import codec, synthesis
engine = codec.corrupt_loaded_image
def slow(*args, **kwargs):
    time.sleep(0.15)  # give the test time to kill us in the middle of the run
    return engine(*args, **kwargs)
codec.corrupt_loaded_image = slow  # module level: worker processes re-run this file's top level
if __name__ == '__main__':
    synthesis.synthesize(sys.argv[1], sys.argv[2], suite='all', corruptions={corruptions!r},
                         severities={severities!r}, workers=int(sys.argv[3]), progress=False)
'''


@pytest.mark.parametrize('workers', [0, 2])
def test_kill_and_resume_gives_the_uninterrupted_result(toy_city, tmp_path, workers):
    reference = str(tmp_path / 'reference')
    synthesize(toy_city, reference, workers=0, **ARGS)
    dst = str(tmp_path / 'killed')
    script = tmp_path / 'slow.py'
    script.write_text(_SLOW_RUN.format(corruptions=CORRUPTIONS, severities=SEVERITIES))
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable, str(script), toy_city, dst, str(workers)], env=env,
                            start_new_session=True)
    journal = osp.join(dst, '.fan_mm', 'journal')
    deadline = time.time() + 600  # generous: the test machine is shared and may be loaded
    try:
        while time.time() < deadline:
            records = 0
            if osp.isdir(journal):
                for name in os.listdir(journal):
                    records += open(osp.join(journal, name), 'rb').read().count(b'"sha256"')
            if records >= 3:
                break
            assert proc.poll() is None, 'the run finished before it could be killed'
            time.sleep(0.05)
        else:
            pytest.fail('no progress within 600 s')
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group: workers die too
        proc.wait()
    assert not osp.exists(osp.join(dst, 'frost', '3', 'manifest.json')) or \
        not osp.exists(osp.join(dst, 'gaussian_noise', '1', 'manifest.json')), 'the run was not interrupted'
    # Whatever was left: no final file is a truncated image.
    for rel, data in tree(dst).items():
        if rel.endswith('.png') and _TMP_TAG not in rel:
            assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None, rel
    assert any('unfinished' in p or 'not finished' in p or 'not found' in p for p in verify(dst))

    result = synthesize(toy_city, dst, workers=workers, **ARGS)
    assert result.ok and result.skipped >= 3 and result.skipped + result.written == 16
    assert tree(dst) == tree(reference)
    assert verify(dst) == []


def test_resume_repairs_damaged_and_unrecorded_files(toy_city, tmp_path):
    dst = str(tmp_path / 'dst')
    synthesize(toy_city, dst, workers=0, **ARGS)
    reference = tree(dst)
    rel = next(k for k in reference if k.startswith('frost/1/') and k.endswith('.png'))
    path = osp.join(dst, rel)
    # A file cut short (as after a crash of a tool that wrote in place) is detected and redone.
    with open(path, 'r+b') as f:
        f.truncate(100)
    assert any('bytes, manifest says' in p for p in verify(dst))
    # A same-size change is caught by the checksum only.
    rel2 = next(k for k in reference if k.startswith('gaussian_noise/3/') and k.endswith('.png'))
    data = bytearray(reference[rel2])
    data[-20] ^= 0xFF
    open(osp.join(dst, rel2), 'wb').write(bytes(data))
    problems = verify(dst)
    changed = osp.join(dst, rel2)
    assert any(changed in p and 'SHA-256' in p for p in problems)
    assert not any(changed in p for p in verify(dst, checksums=False))
    # A temporary file of a dead process is reported, and removed by the next run.
    tmp_file = osp.join(osp.dirname(path), f'.x.png{_TMP_TAG}{os.uname().nodename}-999999999')
    open(tmp_file, 'wb').write(b'partial')
    assert any('temporary file' in p for p in verify(dst))
    status, stdout, _ = call_tool('make_corrupted_dataset.py', dst, '--verify')
    assert status == 3 and 'problem' in stdout

    os.remove(osp.join(dst, rel2))  # a missing file (the same-size change cannot be seen by size)
    result = synthesize(toy_city, dst, workers=0, **ARGS)
    assert result.written == 2
    assert tree(dst) == reference and not osp.exists(tmp_file)
    assert verify(dst) == []


def _write(path, img, ext='.png', params=()):
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    open(path, 'wb').write(buf.tobytes())
    return buf.tobytes()


@pytest.fixture()
def odd_folder(toy_city, tmp_path):
    src = tmp_path / 'odd'
    (src / 'sub').mkdir(parents=True)
    img = cv2.imread(osp.join(toy_city, 'leftImg8bit/val', synthesis.resolve_source(toy_city).keys[0]))
    _write(src / 'good.png', img)
    _write(src / 'sub' / 'good.jpg', img, '.jpg', (cv2.IMWRITE_JPEG_QUALITY, 90))
    _write(src / 'gray.png', cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    _write(src / 'rgba.png', np.dstack([img, np.full(img.shape[:2], 128, np.uint8)]))
    _write(src / 'deep.png', img.astype(np.uint16) * 257)
    buf = _write(src / 'truncated.png', img)
    open(src / 'truncated.png', 'wb').write(buf[:len(buf) // 2])
    buf = _write(src / 'cut.jpg', img, '.jpg')
    open(src / 'cut.jpg', 'wb').write(buf[:len(buf) // 2])
    (src / 'text.png').write_text('not an image')
    _write(src / 'tiny.png', img[:20, :20])
    return str(src)


def test_odd_and_broken_inputs_are_named_and_the_rest_carries_on(odd_folder, tmp_path):
    dst = str(tmp_path / 'dst')
    cp = run_tool('make_corrupted_dataset.py', odd_folder, dst, '--suite', 'all', '--corruptions',
                  'gaussian_noise', '--severities', '2', '--workers', '2', '--no-progress')
    assert cp.returncode == 1, cp.stderr
    for bad in ('truncated.png', 'cut.jpg', 'text.png', 'tiny.png'):
        assert bad in cp.stderr
    assert 'too small' in cp.stderr and 'cannot decode' in cp.stderr
    for odd, what in (('gray.png', 'grayscale'), ('rgba.png', 'alpha'), ('deep.png', '16-bit')):
        assert any(odd in line and what in line for line in cp.stderr.splitlines()), (odd, cp.stderr)
    out = osp.join(dst, 'gaussian_noise', '2')
    written = sorted(osp.relpath(osp.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
    assert written == ['deep.png', 'good.png', 'gray.png', 'rgba.png', 'sub/good.png']  # jpg stored as png
    # Converted inputs are corrupted exactly as the loader sees them.
    for name in ('gray.png', 'rgba.png', 'deep.png'):
        loaded = cv2.imread(osp.join(odd_folder, name), cv2.IMREAD_COLOR)
        seed = protocol.image_seed(name, 'gaussian_noise', 2, 0)
        assert np.array_equal(cv2.imread(osp.join(out, name)), corrupt_loaded_image(loaded, 'gaussian_noise', 2, seed))
    manifest = json.load(open(osp.join(dst, 'manifest.json')))
    assert sorted(f['source'] for f in manifest['failures']) == ['cut.jpg', 'text.png', 'tiny.png',
                                                                 'truncated.png']
    assert manifest['pairs'] == {} and manifest['incomplete'] == {'gaussian_noise': [2]}
    assert any('failed input' in p for p in verify(dst))

    strict = synthesize(odd_folder, str(tmp_path / 'strict'), suite='all', corruptions=['gaussian_noise'],
                        severities=[2], strict=True, workers=0, progress=False)
    assert sorted(osp.basename(p) for p in strict.failures) == ['cut.jpg', 'deep.png', 'gray.png', 'rgba.png',
                                                                'text.png', 'tiny.png', 'truncated.png']
    assert 'strict' in strict.failures[osp.join(odd_folder, 'gray.png')]


def test_coco_layout_jpeg_sources_become_png(toy_city, tmp_path):
    src = tmp_path / 'coco'
    (src / 'val2017').mkdir(parents=True)
    (src / 'annotations').mkdir()
    img = cv2.imread(osp.join(toy_city, 'leftImg8bit/val', synthesis.resolve_source(toy_city).keys[0]))
    for i in range(2):
        _write(src / 'val2017' / f'{i:012d}.jpg', img, '.jpg')
    dst = str(tmp_path / 'coco-c')
    result = synthesize(str(src), dst, suite='coco-c', corruptions=['contrast'], severities=[5], workers=0,
                        progress=False)
    assert result.ok and synthesis.load_manifest(dst)['settings']['layout'] == 'coco'
    assert sorted(os.listdir(osp.join(dst, 'contrast', '5', 'val2017'))) == ['000000000000.png', '000000000001.png']
    assert synthesis.pair_image_dir(dst, 'contrast', 5) == osp.join(dst, 'contrast', '5', 'val2017')
    # Two sources that would map to one output name are refused before anything is written.
    _write(src / 'val2017' / '000000000000.png', img)
    with pytest.raises(SynthesisError, match='would both be written'):
        synthesize(str(src), str(tmp_path / 'clash'), suite='coco-c', layout='coco', suffixes=['.jpg', '.png'],
                   corruptions=['contrast'], severities=[5], workers=0, progress=False)


def test_bad_arguments_and_conflicting_settings(toy_city, tmp_path):
    dst = str(tmp_path / 'dst')
    synthesize(toy_city, dst, suite='all', corruptions=['contrast'], severities=[1], workers=0, progress=False)
    with pytest.raises(SynthesisError, match=r"seed.*\(0, 5\)"):
        synthesize(toy_city, dst, suite='all', corruptions=['contrast'], severities=[1], seed=5, progress=False)
    with pytest.raises(protocol.ProtocolError, match='not in suite'):
        synthesize(toy_city, dst, suite='cityscapes-c', corruptions=['zoom_blur'], progress=False)
    with pytest.raises(protocol.ProtocolError, match='1..5'):
        synthesize(toy_city, dst, suite='all', corruptions=['contrast'], severities=[6], progress=False)
    with pytest.raises(protocol.ProtocolError, match='unknown suite'):
        synthesize(toy_city, dst, suite='nope', progress=False)
    with pytest.raises(SynthesisError, match='inside the source'):
        synthesize(toy_city, osp.join(toy_city, 'c'), suite='all', corruptions=['contrast'], progress=False)
    with pytest.raises(SynthesisError, match='does not exist'):
        synthesize(toy_city, dst, suite='all', layout='coco', progress=False)
    for text in ('3/2', 'x', '1/0'):
        with pytest.raises(SynthesisError, match='--shard'):
            synthesis.parse_shard(text)
    # Extending a destination with more corruptions keeps what is there.
    r = synthesize(toy_city, dst, suite='all', corruptions=['contrast', 'motion_blur'], severities=[1], workers=0,
                   progress=False)
    assert r.skipped == 4 and r.written == 4 and len(r.complete_pairs) == 2
    status, _, stderr = call_tool('make_corrupted_dataset.py', toy_city, dst, '--suite', 'all', '--corruptions', 'nope')
    assert status == 2 and "'nope'" in stderr and 'gaussian_noise' in stderr
    status, _, stderr = call_tool('make_corrupted_dataset.py', str(tmp_path / 'missing'), '--verify')
    assert status == 3 and 'manifest.json not found' in stderr


def test_software_record_of_an_older_journal_compares_equal(tmp_path):
    """A run resuming a destination begun by an earlier fan_mm records the same software (more than one
    distinct record is a --verify warning), and nothing that changes from run to run such as the date."""
    import platform

    import PIL
    import scipy
    import skimage

    import fan_mm
    from fan_mm.robustness.synthesis.journal import Journal, journal_software

    # the record as fan_mm 0.1.0 wrote it
    older = dict(fan_mm=fan_mm.__version__, python=platform.python_version(), numpy=np.__version__,
                 opencv=cv2.__version__, scipy=scipy.__version__, skimage=skimage.__version__,
                 pillow=PIL.__version__)
    try:
        import numba
        older['numba'] = numba.__version__
    except ImportError:
        pass
    older.update(protocol.engine_info())
    dst = str(tmp_path / 'dst')
    os.makedirs(osp.join(dst, '.fan_mm', 'journal'))
    with open(osp.join(dst, '.fan_mm', 'journal', 'host-1-0-shard0of1.jsonl'), 'w') as f:
        f.write(json.dumps(dict(software=older, shard=[0, 1]), sort_keys=True) + '\n')
    Journal(dst, (0, 1)).close()
    assert journal_software(dst) == [older]


def _no_hard_links(*args, **kwargs):
    raise OSError(errno.EPERM, 'Operation not permitted')


def test_settings_are_recorded_once_without_hard_links(tmp_path, monkeypatch):
    """Where os.link fails (some network, FUSE and SMB mounts) the settings are still published whole,
    the first writer wins, and no temporary file is left."""
    import threading

    from fan_mm.robustness.synthesis import journal
    settings, other = dict(layout='folder', seed=0, format='png'), dict(layout='folder', seed=1, format='png')
    journal.check_settings(str(tmp_path / 'linked'), settings)
    expected = (tmp_path / 'linked' / '.fan_mm' / 'settings.json').read_bytes()
    monkeypatch.setattr(os, 'link', _no_hard_links)

    dst = tmp_path / 'dst'
    journal.check_settings(str(dst), settings)
    assert (dst / '.fan_mm' / 'settings.json').read_bytes() == expected
    assert os.listdir(dst / '.fan_mm') == ['settings.json']
    journal.check_settings(str(dst), settings)
    with pytest.raises(SynthesisError, match=r'other settings.*seed'):
        journal.check_settings(str(dst), other)
    assert (dst / '.fan_mm' / 'settings.json').read_bytes() == expected

    # Another shard records its settings between our look and our write: its file stays.
    raced = tmp_path / 'raced'

    def other_shard_first(src, dst_path):
        with open(dst_path, 'wb') as f:
            f.write(journal.json_bytes(other))
        _no_hard_links()
    monkeypatch.setattr(os, 'link', other_shard_first)
    with pytest.raises(SynthesisError, match='other settings'):
        journal.check_settings(str(raced), settings)
    assert json.loads((raced / '.fan_mm' / 'settings.json').read_bytes()) == other
    assert os.listdir(raced / '.fan_mm') == ['settings.json']

    # A name claimed and not yet filled: readers wait for the content, and name the file if it never comes.
    claimed = tmp_path / 'claimed' / '.fan_mm' / 'settings.json'
    claimed.parent.mkdir(parents=True)
    claimed.write_bytes(b'')
    filler = threading.Timer(0.2, claimed.write_bytes, [expected])
    filler.start()
    journal.check_settings(str(tmp_path / 'claimed'), settings)
    filler.join()
    claimed.write_bytes(b'')
    monkeypatch.setattr(journal, '_SETTINGS_WAIT_S', 0.2)
    with pytest.raises(SynthesisError, match=r'settings\.json: empty or unreadable'):
        journal.check_settings(str(tmp_path / 'claimed'), settings)

    # A claim that cannot be filled is given up, so the next run is not stuck with an empty file.
    def no_rename(*args, **kwargs):
        raise OSError(errno.EACCES, 'Permission denied')
    monkeypatch.setattr(os, 'link', _no_hard_links)
    monkeypatch.setattr(os, 'replace', no_rename)
    with pytest.raises(OSError):
        journal.check_settings(str(tmp_path / 'denied'), settings)
    assert os.listdir(tmp_path / 'denied' / '.fan_mm') == []
