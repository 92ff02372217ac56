"""Test helpers for the FAN models: official-format checkpoints from key dumps, golden files."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / 'data'
GOLDEN = DATA / 'golden'
KEYS = DATA / 'fan_keys'


def _load_recipe():
    spec = importlib.util.spec_from_file_location('golden_recipe', GOLDEN / 'recipe.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


def read_keys(path):
    """[(key, shape, dtype)] of a key dump (golden ``.keys.txt`` or reference ``fan_keys_*.txt``)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith('#'):
            continue
        key, shape, dtype = line.split('\t')
        rows.append((key, tuple(json.loads(shape)), dtype))
    return rows


def header_value(path, name):
    """``name: value`` from the ``#`` header of a reference key dump."""
    for line in Path(path).read_text().splitlines():
        if line.startswith('#') and f'{name}:' in line:
            return int(line.split(f'{name}:')[1].split()[0])
    raise KeyError(name)


def official_state_dict(keys_path):
    """The official-format state_dict of a key dump, filled with ``recipe.golden_weight``."""
    sd = {}
    for key, shape, dtype in read_keys(keys_path):
        if recipe.keep_from_model(key):
            sd[key] = torch.zeros(shape, dtype=torch.int64)
        else:
            sd[key] = torch.from_numpy(recipe.golden_weight(key, shape))
    return sd


def golden(name):
    """(meta, arrays) of a golden model."""
    arrays = np.load(GOLDEN / f'{name}.npz')
    return json.loads(bytes(arrays['meta'])), arrays


def golden_input(meta):
    return torch.from_numpy(recipe.golden_input(meta['input_shape'], seed=meta['input_seed']))


def tap_error(arrays, tap, tensor):
    """Max abs difference between ``tensor`` and the golden samples of ``tap``."""
    idx = torch.from_numpy(arrays[f'{tap}:idx'])
    ref = torch.from_numpy(arrays[f'{tap}:val'])
    return (tensor.detach().reshape(-1)[idx] - ref).abs().max().item()


def nchw_to_tokens(x, with_cls=False):
    """(B, C, H, W) -> (B, N, C); with a NaN cls row in front if ``with_cls`` (for class-attention taps)."""
    t = x.flatten(2).transpose(1, 2)
    if with_cls:
        t = torch.cat([torch.full_like(t[:, :1], float('nan')), t], dim=1)
    return t


def cls_free_error(arrays, tap, tokens_with_nan_cls):
    """Like ``tap_error`` over the golden samples that are not in the cls row."""
    idx = torch.from_numpy(arrays[f'{tap}:idx'])
    ref = torch.from_numpy(arrays[f'{tap}:val'])
    got = tokens_with_nan_cls.detach().reshape(-1)[idx]
    keep = ~torch.isnan(got)
    assert keep.sum() > 0.9 * len(idx) - 100
    return (got[keep] - ref[keep]).abs().max().item()
