"""fan_mm.corruptions: errors, determinism, seeds, suites, channel order and the tools."""
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

import fan_mm.corruptions as C
from fan_mm.corruptions import corrupt, derive_seed
from fan_mm.analysis.channel_order import channel_order_differences
from fan_mm.analysis.corruption_grid import corruption_grid, load_image
from fan_mm.benchmarks import corruptions as B
from fan_mm.corruptions.reference import imagecorruptions_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
# corruptions whose output depends on the random numbers
RANDOM = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'speckle_noise', 'glass_blur',
          'motion_blur', 'snow', 'frost', 'fog', 'elastic_transform', 'spatter')
needs_frost = pytest.mark.skipif(imagecorruptions_dir() is None and
                                 not os.environ.get('FAN_MM_FROST_DIR'),
                                 reason='frost images (imagecorruptions 1.1.2) not installed')


@pytest.fixture(scope='module')
def img():
    return cv2.resize(data.astronaut(), (72, 48), interpolation=cv2.INTER_AREA)


# ------------------------------------------------------------------------------ errors

def test_unknown_corruption_lists_valid_names(img):
    with pytest.raises(ValueError) as e:
        corrupt(img, 'gaussian_nosie', 1)
    msg = str(e.value)
    assert "'gaussian_nosie'" in msg and "did you mean 'gaussian_noise'" in msg
    assert all(name in msg for name in C.CORRUPTION_NAMES)


@pytest.mark.parametrize('severity', [0, 6, -1, 2.0, True, '3', None])
def test_bad_severity(img, severity):
    with pytest.raises(ValueError, match='severity must be an integer in 1..5'):
        corrupt(img, 'fog', severity)


def test_numpy_integer_severity_and_seed(img):
    a = corrupt(img, 'fog', np.int64(2), seed=np.uint32(5))
    assert np.array_equal(a, corrupt(img, 'fog', 2, seed=5))


@pytest.mark.parametrize('image,exc,pattern', [
    ([[0] * 40] * 40, TypeError, 'numpy.ndarray'),
    (np.zeros((40, 40, 3), np.float32), TypeError, 'dtype uint8, got float32'),
    (np.zeros((40, 40, 3), np.uint16), TypeError, 'dtype uint8, got uint16'),
    (np.zeros((40, 40, 4), np.uint8), ValueError, r'got \(40, 40, 4\)'),
    (np.zeros((40, 40, 2), np.uint8), ValueError, r'got \(40, 40, 2\)'),
    (np.zeros((40,), np.uint8), ValueError, r'got \(40,\)'),
    (np.zeros((2, 40, 40, 3), np.uint8), ValueError, 'shape'),
    (np.zeros((31, 40, 3), np.uint8), ValueError, 'at least 32 x 32 pixels, got 31 x 40'),
    (np.zeros((40, 31), np.uint8), ValueError, 'at least 32 x 32 pixels, got 40 x 31'),
])
def test_bad_images(image, exc, pattern):
    with pytest.raises(exc, match=pattern):
        corrupt(image, 'contrast', 1)


@pytest.mark.parametrize('seed,exc', [(-1, ValueError), (2 ** 32, ValueError),
                                      (1.5, TypeError), ('1', TypeError), (True, TypeError)])
def test_bad_seed(img, seed, exc):
    with pytest.raises(exc, match='seed'):
        corrupt(img, 'fog', 1, seed=seed)


def test_bad_channel_order(img):
    with pytest.raises(ValueError, match="channel_order must be one of rgb, bgr, bgr_legacy"):
        corrupt(img, 'fog', 1, channel_order='BGR ')


def test_missing_frost_images_error(img, tmp_path):
    C.set_frost_dir(tmp_path)
    try:
        with pytest.raises(FileNotFoundError, match='frost1.png|frost'):
            for seed in range(20):   # whichever texture is drawn, none exists
                corrupt(img, 'frost', 1, seed=seed)
    finally:
        C.set_frost_dir(None)


# -------------------------------------------------------------------------- behaviour

@pytest.mark.parametrize('corruption', C.CORRUPTION_NAMES)
def test_shape_dtype_and_input_untouched(img, corruption):
    if corruption == 'frost' and imagecorruptions_dir() is None:
        pytest.skip('frost images not installed')
    before = img.copy()
    out = corrupt(img, corruption, 5, seed=1)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(img, before)
    assert not np.array_equal(out, img)      # every corruption changes this photo


def test_grey_inputs_give_three_channels(img):
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    a = corrupt(grey, 'gaussian_noise', 2, seed=3)
    b = corrupt(grey[..., None], 'gaussian_noise', 2, seed=3)
    c = corrupt(np.stack([grey] * 3, -1), 'gaussian_noise', 2, seed=3)
    assert a.shape == grey.shape + (3,)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_non_contiguous_input(img):
    view = img[:, ::-1]
    assert not view.flags.c_contiguous
    assert np.array_equal(corrupt(view, 'glass_blur', 2, seed=4),
                          corrupt(view.copy(), 'glass_blur', 2, seed=4))


@pytest.mark.parametrize('corruption', RANDOM)
def test_same_seed_same_output_other_seed_other_output(img, corruption):
    if corruption == 'frost' and imagecorruptions_dir() is None:
        pytest.skip('frost images not installed')
    a = corrupt(img, corruption, 3, seed=123)
    assert np.array_equal(a, corrupt(img, corruption, 3, seed=123))
    others = [corrupt(img, corruption, 3, seed=s) for s in (124, 125, 126)]
    assert any(not np.array_equal(a, o) for o in others)


def test_seed_leaves_global_state_alone(img):
    np.random.seed(7)
    expected = np.random.random_sample(3)
    np.random.seed(7)
    corrupt(img, 'snow', 2, seed=1)
    corrupt(img, 'impulse_noise', 2, seed=1)
    assert np.array_equal(np.random.random_sample(3), expected)


def test_global_state_when_no_seed(img):
    # without a seed, np.random.seed decides, as in 1.1.2 (impulse_noise included here)
    for corruption in ('fog', 'impulse_noise', 'shot_noise'):
        np.random.seed(3)
        a = corrupt(img, corruption, 2)
        np.random.seed(3)
        assert np.array_equal(a, corrupt(img, corruption, 2))
    np.random.seed(3)
    assert np.array_equal(corrupt(img, 'fog', 2), corrupt(img, 'fog', 2, seed=3))


def test_results_do_not_depend_on_call_order(img):
    jobs = [(name, sev) for name in ('snow', 'fog', 'shot_noise') for sev in (1, 4)]
    first = {j: corrupt(img, j[0], j[1], seed=derive_seed('a.png', *j)) for j in jobs}
    for j in reversed(jobs):
        assert np.array_equal(first[j], corrupt(img, j[0], j[1], seed=derive_seed('a.png', *j)))


# ------------------------------------------------------------------------ channel order

@needs_frost
@pytest.mark.parametrize('corruption', C.CORRUPTION_NAMES)
def test_bgr_equals_flipped_rgb(img, corruption):
    bgr = np.ascontiguousarray(img[..., ::-1])
    rgb_out = corrupt(img, corruption, 3, seed=9)
    assert np.array_equal(corrupt(bgr, corruption, 3, seed=9, channel_order='bgr'),
                          rgb_out[..., ::-1])
    # legacy: the BGR array goes through the RGB code as is (mmdet's Corrupt transform)
    assert np.array_equal(corrupt(bgr, corruption, 3, seed=9, channel_order='bgr_legacy'),
                          corrupt(bgr, corruption, 3, seed=9))


@needs_frost
def test_legacy_bgr_differs_for_colour_dependent_corruptions(img):
    bgr = np.ascontiguousarray(img[..., ::-1])
    for corruption in ('frost', 'snow', 'spatter'):
        correct = corrupt(bgr, corruption, 3, seed=2, channel_order='bgr')
        legacy = corrupt(bgr, corruption, 3, seed=2, channel_order='bgr_legacy')
        assert not np.array_equal(correct, legacy), corruption
    # contrast is symmetric in the channels; brightness nearly (the HSV hue is rounded
    # differently when R and B swap: at most 1 grey level on a few pixels)
    assert np.array_equal(corrupt(bgr, 'contrast', 3, channel_order='bgr'),
                          corrupt(bgr, 'contrast', 3, channel_order='bgr_legacy'))
    diff = np.abs(corrupt(bgr, 'brightness', 3, channel_order='bgr').astype(int) -
                  corrupt(bgr, 'brightness', 3, channel_order='bgr_legacy'))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


@needs_frost
def test_channel_order_dependent_list_is_what_the_engine_does():
    """CHANNEL_ORDER_DEPENDENT (and the list in docs/robustness.md) is exactly the set of corruptions whose
    bgr_legacy result differs from the rgb one, measured as tools/analysis/channel_order_difference.py does."""
    import re
    rocket = B.benchmark_image('rocket', (120, 160))
    diffs = channel_order_differences(rocket, severity=3, seed=0)
    measured = {name for name, (mean, _) in diffs.items() if mean > 0}
    assert measured == set(C.CHANNEL_ORDER_DEPENDENT), (sorted(measured), C.CHANNEL_ORDER_DEPENDENT)
    assert len(C.CHANNEL_ORDER_DEPENDENT) == 10
    assert sum(c in C.CHANNEL_ORDER_DEPENDENT for c in C.get_corruption_names('cityscapes-c')) == 10
    docs = (REPO / 'docs' / 'robustness.md').read_text()
    line = re.search(r'^Differ between `rgb` and `bgr_legacy`: (.*)$', docs, re.M)
    assert line, 'docs/robustness.md: the channel-order list is missing'
    assert set(re.findall(r'`(\w+)`', line.group(1))) == set(C.CHANNEL_ORDER_DEPENDENT)


# ----------------------------------------------------------------------------- seeds

def test_derive_seed_is_pinned():
    # the hashing scheme is part of the results: changing it changes every -C dataset
    assert derive_seed('frankfurt/frankfurt_000000_000294_leftImg8bit.png', 'fog', 3) == \
        3379273922
    assert derive_seed('a.png', 'snow', 1, base_seed=1) == 2093201526


def test_derive_seed_properties():
    s = derive_seed('dir/img.png', 'fog', 3)
    assert isinstance(s, int) and 0 <= s < 2 ** 32
    assert derive_seed(pathlib.PurePosixPath('dir/img.png'), 'fog', 3) == s
    assert derive_seed(pathlib.PureWindowsPath('dir\\img.png'), 'fog', 3) == s
    others = {derive_seed('dir/img.png', 'fog', 4), derive_seed('dir/img.png', 'frost', 3),
              derive_seed('dir/img2.png', 'fog', 3), derive_seed('dir/img.png', 'fog', 3,
                                                                 base_seed=1),
              derive_seed('dir/img.png', 'fog', '3'), derive_seed('dir/img.pngfog', 3)}
    assert s not in others and len(others) == 6
    np.random.RandomState(s)     # usable as a legacy seed


@pytest.mark.parametrize('key', [(), (1.5,), (None,), (True,)])
def test_derive_seed_bad_keys(key):
    with pytest.raises((TypeError, ValueError)):
        derive_seed(*key)


# ---------------------------------------------------------------------------- suites

def test_suites_and_categories():
    assert len(C.get_corruption_names('imagenet-c')) == 15
    assert C.get_corruption_names('holdout') == ['speckle_noise', 'gaussian_blur', 'spatter',
                                                 'saturate']
    assert C.get_corruption_names('all') == list(C.CORRUPTION_NAMES)
    assert C.get_corruption_names('coco-c') == C.get_corruption_names('imagenet-c')
    city = C.get_corruption_names('cityscapes-c')
    assert len(city) == 16 and not {'zoom_blur', 'elastic_transform', 'pixelate'} & set(city)
    cats = C.get_categories('cityscapes-c')
    assert {k: len(v) for k, v in cats.items()} == dict(noise=4, blur=4, weather=4, digital=4)
    assert set(cats['blur']) == {'motion_blur', 'defocus_blur', 'glass_blur', 'gaussian_blur'}
    assert set(cats['weather']) == {'snow', 'spatter', 'fog', 'frost'}
    assert C.get_category('brightness', 'imagenet-c') == 'weather'
    assert C.get_category('brightness', 'cityscapes-c') == 'digital'
    assert C.get_corruption_names('imagenet-c', 'noise') == ['gaussian_noise', 'shot_noise',
                                                             'impulse_noise']
    for suite in C.SUITES:   # categories partition each suite
        assert sorted(sum(C.get_categories(suite).values(), [])) == \
            sorted(C.get_corruption_names(suite))


def test_severity_policies():
    assert C.get_severities('fog', '1-5') == [1, 2, 3, 4, 5]
    assert C.get_severities('fog', '1-3') == [1, 2, 3]
    assert C.get_severities('fog', 'noise-1-3') == [1, 2, 3, 4, 5]
    assert C.get_severities('speckle_noise', 'noise-1-3') == [1, 2, 3]
    city = C.get_corruption_names('cityscapes-c')
    assert sum(len(C.get_severities(n, 'noise-1-3')) for n in city) == 72


@pytest.mark.parametrize('call,pattern', [
    (lambda: C.get_corruption_names('cityscapes'), "unknown suite 'cityscapes'.*cityscapes-c"),
    (lambda: C.get_corruption_names('all', 'weathr'), "unknown category 'weathr'"),
    (lambda: C.get_severities('fog', '1-4'), "unknown severity policy '1-4'"),
    (lambda: C.get_severities('fogg', '1-5'), "unknown corruption 'fogg'"),
    (lambda: C.get_category('zoom_blur', 'cityscapes-c'), 'not part of suite'),
])
def test_suite_errors(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# ----------------------------------------------------------------------------- tools

def test_corruption_grid(img):
    grid = corruption_grid(img, ['fog', 'contrast'], [1, 5], max_side=64, thumb=40)
    tile_h = round(48 * 40 / 72)
    assert grid.dtype == np.uint8 and grid.shape[2] == 3
    assert grid.shape[0] == 24 + 2 * tile_h + 2 * 4           # header + 2 rows + gaps
    assert grid.shape[1] == 150 + 3 * 40 + 3 * 4              # names + clean + 2 severities


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='image not found'):
        load_image(tmp_path / 'missing.png')
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'not an image')
    with pytest.raises(ValueError, match='cannot read image'):
        load_image(bad)
    good = tmp_path / 'grey.png'
    cv2.imwrite(str(good), np.full((40, 50), 7, np.uint8))
    assert load_image(good).shape == (40, 50, 3)


def test_visualize_tool_rejects_unreadable_image(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, str(REPO / 'tools' / 'visualize_corruptions.py'),
                          str(tmp_path / 'nope.jpg'), '--out', str(tmp_path / 'g.png')],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 2 and 'image not found' in res.stderr
    assert not (tmp_path / 'g.png').exists()


def test_benchmark_rows_and_table(img, tmp_path):
    rows = B.run_benchmark(img, ['contrast', 'motion_blur'], [1, 2], repeats=1,
                           reference=imagecorruptions_dir() is not None)
    assert [(r['corruption'], r['severity']) for r in rows] == [
        ('contrast', 1), ('contrast', 2), ('motion_blur', 1), ('motion_blur', 2)]
    assert all(r['fan_mm_s'] > 0 for r in rows)
    if imagecorruptions_dir() is not None:
        assert all(r['identical'] for r in rows)
        per, total = B.summarize(rows)
        assert total['speedup'] == pytest.approx(total['reference_s'] / total['fan_mm_s'])
        table = B.format_table(rows)
        assert '| contrast |' in table and '**total**' in table
    B.write_json(tmp_path / 'a.json', rows, dict(note='test'))
    assert B.read_rows([tmp_path / 'a.json', tmp_path / 'a.json']) == rows + rows
    assert B.parse_size('2048x1024') == (1024, 2048)
    with pytest.raises(ValueError, match='WIDTHxHEIGHT'):
        B.parse_size('2048')


def test_glass_blur_random_blocks_do_not_change_the_stream(img, monkeypatch):
    from fan_mm.corruptions import blur
    expected = corrupt(img, 'glass_blur', 4, seed=5)
    monkeypatch.setattr(blur, '_GLASS_BLOCK', 7)    # many small randint draws
    assert np.array_equal(corrupt(img, 'glass_blur', 4, seed=5), expected)
