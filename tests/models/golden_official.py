"""Helpers for the golden tests of the official-code ports (LV-ViT, FAN-Swin).

The goldens (``data/golden``, see its README) hold outputs of the official models run with
weights that ``recipe.golden_weight`` derives from each key name.
"""
import atexit
import functools
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

GOLDEN_DIR = Path(__file__).resolve().parents[1] / 'data' / 'golden'


def _load_recipe():
    spec = importlib.util.spec_from_file_location('golden_recipe', GOLDEN_DIR / 'recipe.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


def read_keys(name):
    """``[(key, shape, dtype)]`` of the official state_dict, in the official order."""
    rows = []
    for line in (GOLDEN_DIR / f'{name}.keys.txt').read_text().splitlines():
        key, shape, dtype = line.split('\t')
        rows.append((key, tuple(json.loads(shape)), dtype))
    return rows


@functools.lru_cache(maxsize=None)
def official_state_dict(name):
    """The official-format state_dict the goldens were computed with (cached: do not modify).

    Integer / derived buffers come from ``<name>.buffers.npz`` where it exists (the official
    values), else zeros (``num_batches_tracked``), as in a freshly built official model.
    """
    buffers_file = GOLDEN_DIR / f'{name}.buffers.npz'
    buffers = dict(np.load(buffers_file)) if buffers_file.exists() else {}
    state_dict = {}
    for key, shape, dtype in read_keys(name):
        if key in buffers:
            state_dict[key] = torch.from_numpy(buffers[key])
        elif recipe.keep_from_model(key):
            state_dict[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
        else:
            state_dict[key] = torch.from_numpy(recipe.golden_weight(key, shape))
    return state_dict


def load_golden(name):
    """``(npz, meta, input tensor)``."""
    data = np.load(GOLDEN_DIR / f'{name}.npz')
    meta = json.loads(bytes(data['meta']))
    x = torch.from_numpy(recipe.golden_input(meta['input_shape'], seed=meta['input_seed']))
    return data, meta, x


def tap_error(data, tap, value):
    """Max abs difference at the golden's sampled positions of ``tap``."""
    flat = value.detach().reshape(-1).numpy()
    return float(np.abs(flat[data[tap + ':idx']] - data[tap + ':val']).max())


_FILES_DIR = []


def official_file(name, wrap=None):
    """Path of a checkpoint file holding ``official_state_dict(name)`` (written once per run),
    flat or under the container key ``wrap``."""
    if not _FILES_DIR:
        _FILES_DIR.append(Path(tempfile.mkdtemp(prefix='fan_mm_golden_')))
        atexit.register(shutil.rmtree, _FILES_DIR[0], ignore_errors=True)
    path = _FILES_DIR[0] / f'{name}.{wrap or "flat"}.pth'
    if not path.exists():
        sd = official_state_dict(name)
        torch.save({wrap: sd} if wrap else sd, path)
    return path
