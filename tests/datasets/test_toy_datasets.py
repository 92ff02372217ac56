"""Tests of the toy dataset generators (fan_mm.datasets.toy) that need no mmdet/mmseg."""
import importlib.util
import json
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from fan_mm.datasets import toy
from fan_mm.datasets.toy import (CITYSCAPES_TRAIN_IDS, CITYSCAPES_USED_TRAIN_IDS, COCO_CLASSES, COCO_PALETTE,
                                 IGNORE_INDEX, MANIFEST_NAME, cityscapes_sample_name, load_manifest,
                                 make_toy_cityscapes, make_toy_coco, make_toy_dataset, parse_size,
                                 render_cityscapes_sample, render_coco_sample, verify_toy_dataset)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _tree(root):
    """{relative path: bytes} of every file under root."""
    files = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, root)] = f.read()
    return files


def _mtimes(root):
    return {p: os.stat(osp.join(root, p)).st_mtime_ns for p in _tree(root)}


def _rgb(path):
    return cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize('kind', ['coco', 'cityscapes'])
def test_same_arguments_give_byte_identical_files(tmp_path, kind):
    args = dict(num_train=3, num_val=2, seed=5)
    make_toy_dataset(kind, str(tmp_path / 'a'), **args)
    make_toy_dataset(kind, str(tmp_path / 'b'), **args)
    a, b = _tree(tmp_path / 'a'), _tree(tmp_path / 'b')
    assert sorted(a) == sorted(b)
    assert a == b
    assert MANIFEST_NAME in a
    # The manifest must not depend on where the dataset lives.
    assert str(tmp_path).encode() not in a[MANIFEST_NAME]
    # Another seed changes every image.
    make_toy_dataset(kind, str(tmp_path / 'c'), **dict(args, seed=6))
    c = _tree(tmp_path / 'c')
    images = [p for p in a if p.endswith('.png') and 'gtFine' not in p]
    assert len(images) == 5
    assert all(a[p] != c[p] for p in images)


def test_image_does_not_depend_on_dataset_size():
    small = render_coco_sample(0, 'train', 2, (256, 192))
    again = render_coco_sample(0, 'train', 2, (256, 192))
    other_split = render_coco_sample(0, 'val', 2, (256, 192))
    assert np.array_equal(small.image, again.image)
    assert not np.array_equal(small.image, other_split.image)
    img1, lab1 = render_cityscapes_sample(0, 'val', 1)
    img2, lab2 = render_cityscapes_sample(0, 'val', 1)
    assert np.array_equal(img1, img2) and np.array_equal(lab1, lab2)


def test_prefix_of_a_larger_dataset_is_identical(tmp_path):
    make_toy_coco(str(tmp_path / 'small'), num_train=2, num_val=1)
    make_toy_coco(str(tmp_path / 'large'), num_train=4, num_val=1)
    for name in ('000000.png', '000001.png'):
        assert (tmp_path / 'small' / 'train' / name).read_bytes() == (tmp_path / 'large' / 'train' / name).read_bytes()


# ----------------------------------------------------------------------------- COCO


def test_coco_layout_and_json(toy_coco):
    root, params = toy_coco.root, toy_coco.manifest['params']
    assert params == dict(num_train=6, num_val=4, size=[256, 192], seed=1)
    for split in ('train', 'val'):
        ann_file = osp.join(root, 'annotations', f'instances_{split}.json')
        coco = COCO(ann_file)
        cats = coco.loadCats(coco.getCatIds())
        assert [(c['id'], c['name']) for c in cats] == [(i + 1, n) for i, n in enumerate(COCO_CLASSES)]
        img_ids = coco.getImgIds()
        assert img_ids == list(range(1, params[f'num_{split}'] + 1))
        ann_ids = [a['id'] for a in coco.dataset['annotations']]
        assert len(set(ann_ids)) == len(ann_ids) and min(ann_ids) == 1
        for img in coco.loadImgs(img_ids):
            assert img['file_name'] == f'{img["id"] - 1:06d}.png'
            pixels = cv2.imread(osp.join(root, split, img['file_name']), cv2.IMREAD_UNCHANGED)
            assert pixels.shape == (img['height'], img['width'], 3) == (192, 256, 3)
            assert pixels.dtype == np.uint8
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
            assert 1 <= len(anns) <= 4
            for ann in anns:
                assert ann['iscrowd'] == 0
                assert ann['category_id'] in range(1, len(COCO_CLASSES) + 1)
                rle = coco.annToRLE(ann)
                assert ann['area'] == float(mask_utils.area(rle)) > 0
                assert ann['bbox'] == [float(v) for v in mask_utils.toBbox(rle)]
                # Big objects: at least 20 % of the short side, medium or large in COCO terms.
                assert min(ann['bbox'][2:]) >= 0.2 * 192 and ann['area'] > 32**2
                ring = COCO_CLASSES[ann['category_id'] - 1] == 'ring'
                assert isinstance(ann['segmentation'], dict if ring else list)


def test_coco_annotations_rasterise_to_the_pasted_objects(toy_coco):
    """Every annotation, rasterised by pycocotools, equals the generator's mask, and the
    image differs from its background exactly inside those masks, in the class colour."""
    root, params = toy_coco.root, toy_coco.manifest['params']
    palette = np.array(COCO_PALETTE, np.float64)
    palette_chroma = palette / palette.sum(1, keepdims=True)
    formats = set()
    for split in ('train', 'val'):
        coco = COCO(osp.join(root, 'annotations', f'instances_{split}.json'))
        for img in coco.loadImgs(coco.getImgIds()):
            sample = render_coco_sample(params['seed'], split, img['id'] - 1, tuple(params['size']))
            on_disk = _rgb(osp.join(root, split, img['file_name']))
            assert np.array_equal(on_disk, sample.image)
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
            assert len(anns) == len(sample.objects)
            union = np.zeros(sample.image.shape[:2], bool)
            for ann, obj in zip(anns, sample.objects):
                formats.add(type(ann['segmentation']))
                assert ann['category_id'] == obj.category_id
                assert np.array_equal(coco.annToMask(ann).astype(bool), obj.mask)
                assert not (union & obj.mask).any(), 'objects must not overlap (masks are the visible parts)'
                union |= obj.mask
                # Inside the mask every pixel has the chroma of the object's class colour.
                px = on_disk[obj.mask].astype(np.float64)
                chroma = px / px.sum(1, keepdims=True)
                nearest = np.argmin(((chroma[:, None] - palette_chroma[None])**2).sum(-1), axis=1)
                assert (nearest == obj.category_id - 1).all()
            assert np.array_equal(on_disk[~union], sample.background[~union])
    assert formats == {list, dict}, 'both polygon and RLE annotations are expected'


def test_coco_classes_are_balanced_enough(toy_coco):
    counts = np.zeros(len(COCO_CLASSES), int)
    for split in ('train', 'val'):
        with open(osp.join(toy_coco.root, 'annotations', f'instances_{split}.json')) as f:
            for ann in json.load(f)['annotations']:
                counts[ann['category_id'] - 1] += 1
    assert counts.sum() >= 2 * 10 * 0.9  # mostly 2-4 objects per image
    assert (counts > 0).all(), counts


# ----------------------------------------------------------------------------- Cityscapes

NAME = re.compile(r'^([a-z]+)_(\d{6})_(\d{6})_leftImg8bit\.png$')


def test_cityscapes_layout_and_naming(toy_cityscapes):
    root, params = toy_cityscapes.root, toy_cityscapes.manifest['params']
    allowed = set(CITYSCAPES_USED_TRAIN_IDS) | {IGNORE_INDEX}
    for split in ('train', 'val'):
        images = []
        for dirpath, _, names in os.walk(osp.join(root, 'leftImg8bit', split)):
            images += [osp.join(dirpath, n) for n in names]
        assert len(images) == params[f'num_{split}']
        cities = set()
        for path in images:
            city = osp.basename(osp.dirname(path))
            m = NAME.match(osp.basename(path))
            assert m and m.group(1) == city, path
            cities.add(city)
            seg = osp.join(root, 'gtFine', split, city,
                           osp.basename(path).replace('_leftImg8bit.png', '_gtFine_labelTrainIds.png'))
            img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
            lab = cv2.imread(seg, cv2.IMREAD_UNCHANGED)
            assert img.shape == (128, 256, 3) and img.dtype == np.uint8
            assert lab.shape == (128, 256) and lab.dtype == np.uint8
            values = set(np.unique(lab).tolist())
            assert values <= allowed, values - allowed
            for name in ('road', 'sidewalk', 'building', 'sky'):
                assert CITYSCAPES_TRAIN_IDS[name] in values, (path, name)
            assert IGNORE_INDEX in values  # the ego-vehicle hood
        assert len(cities) == 2
        # Files are where cityscapes_sample_name says.
        city, name = cityscapes_sample_name(split, 0)
        assert osp.isfile(osp.join(root, 'leftImg8bit', split, city, f'{name}_leftImg8bit.png'))
        assert osp.isfile(osp.join(root, 'gtFine', split, city, f'{name}_gtFine_labelTrainIds.png'))
    gt_files = [p for p in toy_cityscapes.manifest['files'] if p.startswith('gtFine/')]
    assert all(p.endswith('_gtFine_labelTrainIds.png') for p in gt_files)


def test_cityscapes_scene_is_plausible_and_labels_follow_pixels(toy_cityscapes):
    root, params = toy_cityscapes.root, toy_cityscapes.manifest['params']
    ids = CITYSCAPES_TRAIN_IDS
    rows = np.arange(128)[:, None].repeat(256, 1)
    agreement = []
    for index in range(params['num_val']):
        img, lab = render_cityscapes_sample(params['seed'], 'val', index, tuple(params['size']))
        city, name = cityscapes_sample_name('val', index)
        assert np.array_equal(_rgb(osp.join(root, 'leftImg8bit', 'val', city, f'{name}_leftImg8bit.png')), img)
        on_disk = cv2.imread(osp.join(root, 'gtFine', 'val', city, f'{name}_gtFine_labelTrainIds.png'),
                             cv2.IMREAD_UNCHANGED)
        assert np.array_equal(on_disk, lab)
        # Sky above buildings above road; the ignored hood touches the bottom row.
        assert rows[lab == ids['sky']].mean() < rows[lab == ids['building']].mean() < rows[lab == ids['road']].mean()
        assert (lab[-1] == IGNORE_INDEX).any() and not (lab[0] == IGNORE_INDEX).any()
        means = {c: img[lab == c].astype(float).mean(0) for c in np.unique(lab)}
        sky = means[ids['sky']]
        assert sky[2] > sky[0] + 30, 'sky is blue'
        if ids['vegetation'] in means:
            veg = means[ids['vegetation']]
            assert veg[1] > veg[0] and veg[1] > veg[2], 'vegetation is green'
        road = means[ids['road']]
        assert road.max() - road.min() < 25, 'road is grey'
        # A nearest-class-mean classifier on colour agrees with most labels; it does not when
        # the label map is misaligned with the image (checked on a shifted copy).
        classes = sorted(means)
        centres = np.stack([means[c] for c in classes])

        def accuracy(labels):
            d = ((img.reshape(-1, 1, 3).astype(float) - centres[None])**2).sum(-1)
            return (np.array(classes)[d.argmin(1)] == labels.reshape(-1)).mean()

        agreement.append((accuracy(lab), accuracy(np.roll(lab, 12, axis=0))))
    good, shifted = np.mean(agreement, axis=0)
    assert good > 0.7 and good > shifted + 0.1, (good, shifted)


# ----------------------------------------------------------------------------- re-runs, atomicity


def test_rerun_with_same_arguments_is_a_no_op(tmp_path):
    root = str(tmp_path / 'ds')
    first = make_toy_cityscapes(root, num_train=2, num_val=1)
    assert first.created
    before = _mtimes(root)
    time.sleep(0.01)
    again = make_toy_cityscapes(root, num_train=2, num_val=1)
    assert not again.created
    assert again.manifest == first.manifest
    assert _mtimes(root) == before
    assert verify_toy_dataset(root) == []


def test_rerun_with_other_arguments_needs_overwrite(tmp_path):
    root = str(tmp_path / 'ds')
    make_toy_coco(root, num_train=2, num_val=1)
    with pytest.raises(FileExistsError, match=r'overwrite'):
        make_toy_coco(root, num_train=3, num_val=1)
    with pytest.raises(FileExistsError, match=r'toy coco dataset'):
        make_toy_cityscapes(root, num_train=2, num_val=1)
    result = make_toy_coco(root, num_train=3, num_val=1, overwrite=True)
    assert result.created and result.manifest['params']['num_train'] == 3
    assert sorted(os.listdir(osp.join(root, 'train'))) == ['000000.png', '000001.png', '000002.png']
    assert verify_toy_dataset(root) == []
    assert os.listdir(tmp_path) == ['ds']  # no staging or old copies left


def test_damaged_dataset_is_rebuilt(tmp_path):
    root = str(tmp_path / 'ds')
    make_toy_coco(root, num_train=2, num_val=1)
    reference = _tree(root)
    os.remove(osp.join(root, 'train', '000001.png'))
    with open(osp.join(root, 'val', '000000.png'), 'r+b') as f:
        f.truncate(10)
    problems = verify_toy_dataset(root)
    assert len(problems) == 2 and 'missing' in problems[1] + problems[0]
    assert make_toy_coco(root, num_train=2, num_val=1).created
    assert _tree(root) == reference
    # verify_toy_dataset also catches same-size corruption through the checksum.
    path = osp.join(root, 'train', '000000.png')
    data = bytearray(reference[osp.join('train', '000000.png')])
    data[-20] ^= 0xFF
    with open(path, 'wb') as f:
        f.write(data)
    assert verify_toy_dataset(root, checksums=False) == []
    assert 'SHA-256' in verify_toy_dataset(root)[0]


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch):
    root = str(tmp_path / 'ds')
    real_png, calls = toy._png, []

    def failing_png(img):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_png(img)

    monkeypatch.setattr(toy, '_png', failing_png)
    with pytest.raises(KeyboardInterrupt):
        make_toy_coco(root, num_train=4, num_val=2)
    assert os.listdir(tmp_path) == []  # neither a partial root nor a staging directory
    monkeypatch.setattr(toy, '_png', real_png)
    assert make_toy_coco(root, num_train=4, num_val=2).created
    assert verify_toy_dataset(root) == []


def test_killed_generation_is_cleaned_up_and_finished(tmp_path):
    """SIGKILL in the middle of a run: the root never appears half-written, and the next run
    removes the dead process's staging directory and writes a complete dataset."""
    root = str(tmp_path / 'ds')
    code = ('import sys; from fan_mm.datasets.toy import make_toy_coco; '
            'make_toy_coco(sys.argv[1], num_train=20000, num_val=1, size=64)')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.Popen([sys.executable, '-c', code, root], env=env)
    try:
        deadline = time.time() + 60
        staging = []
        while time.time() < deadline:
            staging = [d for d in os.listdir(tmp_path) if d.startswith('.ds.partial-')]
            if staging and osp.isdir(osp.join(tmp_path, staging[0], 'train')) and \
                    len(os.listdir(osp.join(tmp_path, staging[0], 'train'))) >= 5:
                break
            assert proc.poll() is None, 'generator exited early'
            time.sleep(0.05)
        else:
            pytest.fail('the generator did not start writing within 60 s')
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not osp.exists(root)
    assert osp.isdir(osp.join(tmp_path, staging[0]))
    make_toy_coco(root, num_train=2, num_val=1, size=64)
    assert verify_toy_dataset(root) == []
    assert os.listdir(tmp_path) == ['ds']


def test_losing_a_race_keeps_the_winners_dataset(tmp_path, monkeypatch):
    """Another process completes the same root while this one is generating: this one drops
    its own copy and returns the winner's (both succeed, one dataset results)."""
    root = str(tmp_path / 'ds')
    real_software = toy._software

    def other_process_finishes_first():
        monkeypatch.setattr(toy, '_software', real_software)
        assert make_toy_cityscapes(root, num_train=2, num_val=1).created
        return real_software()

    monkeypatch.setattr(toy, '_software', other_process_finishes_first)
    result = make_toy_cityscapes(root, num_train=2, num_val=1)
    assert not result.created
    winner_files = _mtimes(root)
    assert verify_toy_dataset(root) == []
    assert os.listdir(tmp_path) == ['ds']
    assert winner_files == _mtimes(root)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_train=0), 'num_train'),
    (dict(num_val=-1), 'num_val'),
    (dict(num_train=2.5), 'num_train'),
    (dict(num_train=True), 'num_train'),
    (dict(seed=-1), 'seed'),
    (dict(seed='1'), 'seed'),
    (dict(size=(10, 10)), '10x10'),
    (dict(size='abc'), 'abc'),
    (dict(size=(256, 128, 3)), 'WIDTH HEIGHT'),
])
def test_bad_arguments_are_rejected(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_toy_coco(str(tmp_path / 'ds'), **kwargs)
    assert os.listdir(tmp_path) == []


def test_parse_size():
    assert parse_size('256x128', 'cityscapes') == (256, 128)
    assert parse_size('512 256', 'cityscapes') == (512, 256)
    assert parse_size(128, 'coco') == (128, 128)
    assert parse_size([320, 240], 'coco') == (320, 240)
    assert parse_size(None, 'coco') == (256, 192)
    assert parse_size(None, 'cityscapes') == (256, 128)
    with pytest.raises(ValueError, match='kind'):
        parse_size(None, 'voc')
    with pytest.raises(ValueError, match='kind'):
        make_toy_dataset('voc', 'x')


def test_bad_roots_are_rejected(tmp_path):
    a_file = tmp_path / 'file'
    a_file.write_text('x')
    with pytest.raises(NotADirectoryError, match='file'):
        make_toy_coco(str(a_file))
    with pytest.raises(OSError, match=re.escape(str(a_file))):
        make_toy_coco(str(a_file / 'below'))
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'precious.txt').write_text('keep me')
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match='not empty'):
            make_toy_coco(str(foreign), overwrite=overwrite)
    assert (foreign / 'precious.txt').read_text() == 'keep me'
    # An existing empty directory is fine.
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert make_toy_coco(str(empty), num_train=1, num_val=1).created


@pytest.mark.skipif(os.name != 'posix' or os.geteuid() == 0, reason='needs POSIX permissions, not root')
def test_unwritable_parent_is_reported(tmp_path):
    parent = tmp_path / 'ro'
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match='not writable'):
            make_toy_coco(str(parent / 'ds'), num_train=1, num_val=1)
    finally:
        parent.chmod(0o700)


# ----------------------------------------------------------------------------- CLI


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', 'make_toy_dataset.py'), *args],
                          env=env, capture_output=True, text=True)


def _cli_in_process(capsys, *args):
    """(exit status, stdout, stderr) of tools/make_toy_dataset.py main() run in this process."""
    spec = importlib.util.spec_from_file_location('make_toy_dataset', osp.join(REPO, 'tools', 'make_toy_dataset.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    status = 0
    try:
        module.main(list(args))
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_cli_matches_the_api(tmp_path, capsys):
    out = _cli('cityscapes', str(tmp_path / 'cli'), '--num-train', '2', '--num-val', '1',
               '--size', '128x64', '--seed', '3')
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith('wrote ')
    make_toy_cityscapes(str(tmp_path / 'api'), num_train=2, num_val=1, size=(128, 64), seed=3)
    assert _tree(tmp_path / 'cli') == _tree(tmp_path / 'api')
    status, stdout, _ = _cli_in_process(capsys, 'cityscapes', str(tmp_path / 'cli'), '--num-train', '2',
                                        '--num-val', '1', '--size', '128', '64', '--seed', '3')
    assert status == 0 and stdout.startswith('already complete')
    status, _, stderr = _cli_in_process(capsys, 'coco', str(tmp_path / 'bad'), '--num-val', '0')
    assert status != 0 and 'num_val' in stderr
    assert not osp.exists(tmp_path / 'bad')
    status, _, stderr = _cli_in_process(capsys, 'coco', str(tmp_path / 'bad'), '--size', '100x20')
    assert status != 0 and '100x20' in stderr
    status, _, stderr = _cli_in_process(capsys, 'coco', str(tmp_path / 'cli'))
    assert status != 0 and '--overwrite' in stderr
    status, stdout, _ = _cli_in_process(capsys, 'coco', str(tmp_path / 'cli'), '--overwrite', '--num-train', '1',
                                        '--num-val', '1')
    assert status == 0 and stdout.startswith('wrote ')
    assert load_manifest(str(tmp_path / 'cli'))['kind'] == 'coco'
