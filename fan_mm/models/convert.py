"""Official ImageNet checkpoint -> a checkpoint that plain mmdet / mmseg ``load_from`` accepts.

The output holds ``{'state_dict': {'backbone.<key>': tensor}, 'meta': {...}}``, the keys in the naming of the
fan_mm dense backbone (``backbone.trunk.…`` for the timm trunk, plus the backbone's own layers where the file
has them), so a detector / segmentor built from a fan_mm config loads it with ``load_from=...`` and reports
only its neck and heads (and the backbone's new dense layers) as missing.

Families plug in through ``register_converter(pattern, build_backbone)`` (fan_mm's own four at the end of
this module): ``pattern`` is an fnmatch pattern of
registered timm model names (``'fan_*_hybrid'``), ``build_backbone(model_name, codebase)`` returns the dense
backbone that ``codebase`` ('mmdet' or 'mmseg') would use for that model (it is built on the meta device, so
it costs no memory). The backbone's own ``match_pretrained`` then maps and checks the keys exactly as
``init_cfg=dict(type='Pretrained', ...)`` would, so a converted file and a directly loaded one agree.
"""
import fnmatch
import os
import os.path as osp
from typing import Callable, List, Optional, Tuple

import torch

from ..registry import CODEBASES
from .checkpoint_utils import CheckpointError, guess_variant, load_state_dict_file, registered_variants

# (pattern, builder); first match wins, so register specific patterns before broad ones.
_CONVERTERS: List[Tuple[str, Callable]] = []


def register_converter(pattern: str, build_backbone: Callable[[str, str], 'torch.nn.Module']) -> None:
    """Make ``convert_checkpoint`` handle the timm models matching ``pattern`` (see module doc)."""
    _CONVERTERS.append((pattern, build_backbone))


def converter_for(model_name: str) -> Callable:
    for pattern, build in _CONVERTERS:
        if fnmatch.fnmatchcase(model_name, pattern):
            return build
    known = ', '.join(p for p, _ in _CONVERTERS)
    raise CheckpointError(f'no dense backbone converts {model_name!r} (known model patterns: {known})')


def _build_fan_hybrid(model_name: str, codebase: str):
    from .backbones.fan import FANHybrid
    # detection layout (strides 4/8/16/32, learnable_downsample) for mmdet, segmentation layout for mmseg
    return FANHybrid(arch=model_name, feat_downsample=codebase == 'mmdet')


def _build_fan_vit(model_name: str, codebase: str):
    from .backbones.fan import FANViT
    return FANViT(arch=model_name, mode='pyramid')


def _build_fan_swin(model_name: str, codebase: str):
    from .backbones.fan_swin import FANSwin
    return FANSwin(arch=model_name)  # the same layout for mmdet and mmseg


def _build_lvvit(model_name: str, codebase: str):
    from .backbones.lvvit import LVViT
    return LVViT(arch=model_name)  # the same layout for mmdet and mmseg


# Every fan_mm family is registered here (and only here).
register_converter('fan_swin_*', _build_fan_swin)
register_converter('fan_*_hybrid', _build_fan_hybrid)
register_converter('fan_*_p16_224', _build_fan_vit)
register_converter('lvvit_*', _build_lvvit)


def _model_names(family: Optional[str]) -> List[str]:
    names = [n for n in registered_variants() if any(fnmatch.fnmatchcase(n, p) for p, _ in _CONVERTERS)]
    if family:
        names = [n for n in names if n.startswith(family + '_') and
                 (family != 'fan' or not n.startswith('fan_swin_'))]
        if not names:
            raise CheckpointError(f'no registered model of family {family!r} can be converted')
    return names


def identify_model(state_dict, family: Optional[str] = None, source: str = 'checkpoint') -> str:
    """The registered model whose keys and shapes fit ``state_dict`` (an error if none fits well)."""
    names = _model_names(family)
    candidates = {n: f for n, f in registered_variants().items() if n in names}
    sd = {k[len('backbone.'):] if k.startswith('backbone.') else k: v for k, v in state_dict.items()}
    guess = guess_variant(sd, candidates)
    if guess is None or guess[1] < 0.9:
        closest = f' (closest: {guess[0]}, {guess[1]:.0%} of keys fit)' if guess else ''
        raise CheckpointError(f'{source} does not look like any registered model{closest}; '
                              f'name it with --model (one of {", ".join(names)})')
    return guess[0]


def convert_checkpoint(src: str, dst: str, model: Optional[str] = None, family: Optional[str] = None,
                       codebase: str = 'mmdet') -> dict:
    """Convert ``src`` (official ImageNet checkpoint, any container) into ``dst`` for ``load_from``.

    Args:
        src: official checkpoint file.
        dst: output file (parent directories are created).
        model: registered timm name of the checkpoint's model (default: identified from the keys).
        family: restrict identification to one family ('fan', 'lvvit', 'fan_swin').
        codebase: 'mmdet' or 'mmseg': which dense layout the target config uses.
    Returns:
        the ``meta`` dict written to ``dst``.
    """
    if codebase not in CODEBASES:
        raise ValueError(f'codebase={codebase!r}: use one of {CODEBASES}')
    state_dict = load_state_dict_file(src)
    if model is None:
        model = identify_model(state_dict, family, src)
    build = converter_for(model)
    with torch.device('meta'):
        backbone = build(model, codebase)
    to_load, unused, new = backbone.match_pretrained(state_dict, src)
    out = {'backbone.' + k: v.detach().clone().contiguous() for k, v in to_load.items()}
    from .. import __version__
    meta = dict(
        fan_mm_version=__version__, source=osp.basename(src), model=model, codebase=codebase,
        backbone=type(backbone).__name__,
        note=backbone.describe_match(len(to_load), unused, new, osp.basename(src)),
    )
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    torch.save({'state_dict': out, 'meta': meta}, dst)
    return meta
