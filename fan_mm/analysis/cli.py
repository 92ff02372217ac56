"""Command-line plumbing shared by ``tools/analysis/*.py``: model and image arguments."""
from __future__ import annotations

import argparse
import os
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np
import torch

from ..utils.image_io import IMAGE_EXTENSIONS
from .features import LoadedModel, build_model, center_crop, load_image



def add_common_args(parser: argparse.ArgumentParser):
    """The positional ``CONFIG_OR_MODEL CHECKPOINT IMAGE...`` and the options every analysis tool shares."""
    parser.add_argument('model', metavar='CONFIG_OR_MODEL',
                        help='timm / fan_mm model name (e.g. vit_small_patch16_224, fan_small_12_p16_224) or an '
                             'mmdet / mmseg config file whose model.backbone is analysed')
    parser.add_argument('checkpoint', metavar='CHECKPOINT',
                        help='"none" for random initialisation (labelled so in figures), an official ImageNet '
                             'checkpoint for a model name, or an mm checkpoint for a config')
    parser.add_argument('images', metavar='IMAGE', nargs='+',
                        help='image files, or folders whose images are all used')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--models', nargs='*', default=[], metavar='SPEC[=CHECKPOINT]',
                        help='more models to compare, each a model name or config with an optional '
                             '"=CHECKPOINT" (default: none, i.e. random init)')
    parser.add_argument('--crop-size', type=int, default=224,
                        help='images are resized (short side) and centre-cropped to this square; each model '
                             'gets the crop resized to its own input size (default: 224)')
    parser.add_argument('--img-size', type=int, default=None,
                        help='input size for mm configs (default 224); timm models use their own')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the noise and of k-means (default: 0)')
    parser.add_argument('--blocks', nargs='+', default=None, metavar='BLOCK',
                        help='block indices (negative from the end, -2 = second last), block names, "all" or '
                             '"stages" (last block of each stage)')
    parser.add_argument('--norm', default='softmax', choices=('softmax', 'l2', 'none'),
                        help='token normalisation before the affinity (default: softmax over channels, '
                             'as in the paper)')


def parse_model_specs(first: str, first_checkpoint: str, more: Sequence[str]) -> List[Tuple[str, str]]:
    """``[(spec, checkpoint)]`` from the positional model and ``--models SPEC[=CHECKPOINT]`` values."""
    specs = [(first, first_checkpoint)]
    for m in more:
        spec, _, ckpt = m.partition('=')
        if not spec:
            raise ValueError(f'--models: empty model in {m!r}')
        specs.append((spec, ckpt or 'none'))
    return specs


def check_device(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'--device {device}: CUDA is not available on this machine')
    return dev


def load_models(specs: Sequence[Tuple[str, str]], device: str = 'cpu', img_size=None) -> List[LoadedModel]:
    dev = check_device(device)
    models = []
    for spec, ckpt in specs:
        kwargs = {'img_size': img_size} if img_size is not None and spec.endswith('.py') else {}
        models.append(build_model(spec, ckpt, dev, **kwargs))
    return models


def expand_images(paths: Sequence[str]) -> List[str]:
    """Image files from files and folders (a folder's images sorted by name)."""
    out = []
    for p in paths:
        if osp.isdir(p):
            found = sorted(osp.join(p, f) for f in os.listdir(p) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in folder {p}')
            out.extend(found)
        elif osp.isfile(p):
            out.append(p)
        else:
            raise FileNotFoundError(f'image not found: {p}')
    return out


def load_images(paths: Sequence[str], crop_size: int) -> Tuple[List[np.ndarray], List[str]]:
    """Centre crops and unique names (file stem, numbered when repeated) of the given images."""
    files = expand_images(paths)
    images, names, seen = [], [], {}
    for f in files:
        stem = osp.splitext(osp.basename(f))[0]
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f'{stem}_{seen[stem]}')
        images.append(center_crop(load_image(f), crop_size))
    return images, names
