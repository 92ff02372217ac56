"""The familiar grid of every corruption at every severity for one image, and image loading / saving
for the tools.

Used by ``tools/visualize_corruptions.py``. Needs no torch.
"""
import os

import cv2
import numpy as np

from fan_mm.corruptions import SEVERITIES, check_corruption, check_severity, corrupt, derive_seed
from fan_mm.utils.image_io import read_image

__all__ = ['load_image', 'save_image', 'corruption_grid']


def load_image(path):
    """Read an image file as uint8 RGB (H, W, 3), as mmcv's loader decodes it (grey, palette,
    RGBA and 16-bit files are converted; see :func:`fan_mm.utils.image_io.read_image`).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be decoded (``ImageReadError``, naming the file).
    """
    return read_image(path, 'rgb')


def save_image(path, rgb):
    """Write a uint8 RGB array (format from the extension, e.g. .png)."""
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    if not cv2.imwrite(path, np.ascontiguousarray(rgb[..., ::-1])):
        raise ValueError(f'cannot write image {path!r} (unknown extension?)')


def _fit(image, max_side):
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(32, round(w * scale)), max(32, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _label(text, height, width, scale=0.5):
    cell = np.full((height, width, 3), 255, np.uint8)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    org = (max(2, (width - tw) // 2), (height + th) // 2)
    cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def corruption_grid(image, corruptions, severities=SEVERITIES, max_side=512, thumb=192,
                    seed=0, gap=4):
    """One row per corruption: the clean image, then each severity.

    The image is first reduced so that its longer side is at most ``max_side`` (corruptions
    are calibrated on the pixel scale, so this is what a dataset at that size would look
    like), each result is shown ``thumb`` pixels wide.  Seeds come from
    :func:`derive_seed` (corruption, severity, base ``seed``).

    Returns:
        uint8 RGB grid with a name column on the left and a header row.
    """
    corruptions = [check_corruption(c) for c in corruptions]
    severities = [check_severity(s) for s in severities]
    image = _fit(image, max_side)
    h, w = image.shape[:2]
    th, tw = max(1, round(h * thumb / w)), thumb
    name_w, head_h = 150, 24

    def tile(img):
        return cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)

    clean = tile(np.ascontiguousarray(image[..., :3]) if image.ndim == 3 else
                 np.stack([image] * 3, axis=-1))
    header = [_label('', head_h, name_w), _label('clean', head_h, tw)]
    header += [_label(f'severity {s}', head_h, tw) for s in severities]
    rows = [header]
    for name in corruptions:
        cells = [_label(name, th, name_w), clean]
        for s in severities:
            cells.append(tile(corrupt(image, name, s, seed=derive_seed(name, s, base_seed=seed))))
        rows.append(cells)
    lines = []
    for cells in rows:
        parts = []
        for cell in cells:
            parts += [cell, np.full((cell.shape[0], gap, 3), 255, np.uint8)]
        line = np.concatenate(parts[:-1], axis=1)
        lines += [line, np.full((gap, line.shape[1], 3), 255, np.uint8)]
    return np.concatenate(lines[:-1], axis=0)
