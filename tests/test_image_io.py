"""fan_mm.utils.image_io: one image reader for synthesis, the corruption grid and the analysis tools; odd
files (16-bit, grey, RGBA) decoded as mmcv's loader decodes them, broken ones named."""
import cv2
import numpy as np
import pytest

from fan_mm.analysis.features import load_image as features_load_image
from fan_mm.analysis.corruption_grid import load_image as visualize_load_image
from fan_mm.robustness.codec import InputError, decode_image as synthesis_decode
from fan_mm.utils.image_io import ImageReadError, odd_properties, read_image

READERS = {'image_io': read_image, 'visualize': visualize_load_image, 'features': features_load_image}


@pytest.fixture(scope='module')
def bgr():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    img[:20] = (10, 120, 250)  # a block of known colour
    return img


def _write(path, img, ext='.png'):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


@pytest.mark.parametrize('reader', list(READERS))
def test_16bit_grey_keeps_its_contrast(tmp_path, reader):
    # a 16-bit grey PNG: PIL's convert('RGB') clipped every value above 255 to white
    grey16 = (np.arange(40 * 48, dtype=np.uint32).reshape(40, 48) * 34).astype(np.uint16)
    path = tmp_path / 'deep.png'
    buf = _write(path, grey16)
    out = READERS[reader](path)
    assert out.dtype == np.uint8 and out.shape == (40, 48, 3)
    expected = (grey16 >> 8).astype(np.uint8)  # the high byte, as cv2 (and so mmcv) reduces 16 bits
    for c in range(3):
        assert np.array_equal(out[..., c], expected)
    assert (out == 255).mean() < 0.01
    assert odd_properties(buf) == ['16-bit', 'grayscale']


@pytest.mark.parametrize('reader', list(READERS))
def test_grey_rgba_and_colour_files(tmp_path, bgr, reader):
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    _write(tmp_path / 'grey.png', grey)
    _write(tmp_path / 'rgba.png', np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)]))
    _write(tmp_path / 'colour.png', bgr)
    read = READERS[reader]
    assert np.array_equal(read(tmp_path / 'grey.png'), np.dstack([grey] * 3))
    assert np.array_equal(read(tmp_path / 'rgba.png'), bgr[..., ::-1])  # alpha dropped, RGB out
    assert np.array_equal(read(tmp_path / 'colour.png'), bgr[..., ::-1])
    assert tuple(read(tmp_path / 'colour.png')[0, 0]) == (250, 120, 10)


@pytest.mark.parametrize('reader', list(READERS))
def test_truncated_and_broken_files_are_named(tmp_path, bgr, reader):
    buf = _write(tmp_path / 'whole.png', bgr)
    (tmp_path / 'cut.png').write_bytes(buf[:len(buf) // 2])
    jpg = _write(tmp_path / 'whole.jpg', bgr, '.jpg')
    (tmp_path / 'cut.jpg').write_bytes(jpg[:len(jpg) // 2])
    (tmp_path / 'empty.png').write_bytes(b'')
    (tmp_path / 'text.png').write_text('not an image')
    read = READERS[reader]
    for name in ('cut.png', 'cut.jpg', 'empty.png', 'text.png'):
        with pytest.raises(ImageReadError, match=f'cannot read image .*{name}'):
            read(tmp_path / name)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        read(tmp_path / 'missing.png')


def test_synthesis_decodes_with_the_same_reader(tmp_path, bgr):
    buf = _write(tmp_path / 'rgba.png', np.dstack([bgr, np.full(bgr.shape[:2], 7, np.uint8)]))
    img, notes = synthesis_decode(buf, 'rgba.png')
    assert np.array_equal(img, read_image(tmp_path / 'rgba.png', 'bgr')) and notes == ['alpha']
    with pytest.raises(InputError, match='cut.png: cannot decode'):
        synthesis_decode(buf[:len(buf) // 2], 'cut.png')
