"""Building timm-style models and loading official checkpoint files into them.

timm's own loader reads ``pretrained_cfg['file']`` with a bare ``torch.load`` and reports a
wrong or broken file with torch's messages (a zip-archive error, a list of hundreds of
missing keys). The family files here build with ``build_model_with_cfg`` and then load the
file themselves, so that ``timm.create_model(name, pretrained=True,
pretrained_cfg_overlay=dict(file=PATH))`` reads the file once, unwraps the official
containers and names the problem when the file does not fit (see ``checkpoint_utils``).
"""
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence

import torch
from torch import nn
from timm.models import build_model_with_cfg
from timm.models._features import FeatureGetterNet

from .checkpoint_utils import (CONTAINER_KEYS, DERIVED_KEY_SUFFIXES, CheckpointError, check_state_dict,
                               load_state_dict_file, registered_variants, unwrap_state_dict)


# A key that only one family's checkpoints have -> the registered names to compare with.
_FAMILY_SIGNATURES = (
    ('aux_head.weight', lambda n: n.startswith('lvvit_')),
    ('layers.0.blocks.0.attn.relative_position_bias_table', lambda n: n.startswith('fan_swin_')),
    ('cls_attn_blocks.0.norm1.weight',
     lambda n: n.startswith('fan_') and not n.startswith('fan_swin_')),
)


def variant_candidates(found: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, Callable]:
    """``{model name: () -> {key: shape}}`` of the registered FAN / LV-ViT classifiers.

    With ``found`` (a checkpoint's tensors) only the family whose signature key it holds is
    listed, if any: every candidate is built (on the meta device) to compare shapes, which
    takes seconds for all two dozen variants.
    """
    # importing the package registers every family; lazily, as the families import this module
    import fan_mm.models  # noqa: F401
    candidates = registered_variants()
    for key, in_family in _FAMILY_SIGNATURES:
        if found is not None and key in found:
            return {n: fn for n, fn in candidates.items() if in_family(n)}
    return candidates


def classifier_names(model: nn.Module) -> Sequence[str]:
    names = getattr(model, 'pretrained_cfg', {}).get('classifier') or ()
    return (names,) if isinstance(names, str) else tuple(names)


def foreign_classifier_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]):
    """Classifier keys of ``state_dict`` whose shape does not fit ``model`` (class count differs)."""
    own = model.state_dict()
    keys = []
    for name in classifier_names(model):
        for suffix in ('.weight', '.bias'):
            key = name + suffix
            if key in state_dict and (key not in own or own[key].shape != state_dict[key].shape):
                keys.append(key)
    return keys


def check_against_model(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                        source: str = 'checkpoint', ignore_missing: Iterable[str] = (),
                        ignore_unexpected: Iterable[str] = ()):
    """Raise ``CheckpointError`` unless ``state_dict`` (already remapped) fits ``model``.

    A classifier whose class count differs from the model's is not an error (fine-tuning
    to another label set); everything else that differs is reported, with the registered
    variant the file looks like.
    """
    name = getattr(model, 'pretrained_cfg', {}).get('architecture') or type(model).__name__
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    foreign = foreign_classifier_keys(model, state_dict)
    found = {k: v for k, v in state_dict.items() if k not in foreign}
    check_state_dict(name, expected, found, source, candidates=variant_candidates(found),
                     ignore_missing=tuple(ignore_missing) + tuple(foreign),
                     ignore_unexpected=tuple(ignore_unexpected))


def remap_and_check(state_dict, model: nn.Module,
                    remap: Callable[[Mapping[str, torch.Tensor], nn.Module], Dict[str, torch.Tensor]]
                    ) -> Dict[str, torch.Tensor]:
    """``remap(state_dict, model)`` (a family's official -> fan_mm naming), then ``check_against_model``:
    the body of every family's ``checkpoint_filter_fn``."""
    source = source_of(state_dict)
    state_dict = remap(state_dict, model)
    check_against_model(state_dict, model, source)
    return state_dict


def flat_state_dict(state_dict, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Unwrap an official container unless ``state_dict`` is already flat."""
    if any(isinstance(state_dict.get(k), Mapping) for k in CONTAINER_KEYS) or \
            any(k.startswith('module.') for k in state_dict):
        return unwrap_state_dict(state_dict, source)
    return dict(state_dict)


def load_pretrained_file(model: nn.Module, filter_fn: Callable, path: Optional[str] = None):
    """Load an official checkpoint file into ``model`` (a timm-style classifier).

    ``path`` defaults to ``model.pretrained_cfg['file']``. ``filter_fn(state_dict, model)``
    remaps and checks the keys; a classifier of another class count is left at its
    initialisation (fine-tuning), as timm does.
    """
    cfg = getattr(model, 'pretrained_cfg', {}) or {}
    path = path or cfg.get('file')
    arch = cfg.get('architecture') or type(model).__name__
    if not path:
        hint = ''.join(f' {note}' for note in cfg.get('notes') or ())
        raise CheckpointError(
            f'{arch}: pretrained=True needs a local checkpoint file; nothing is downloaded. '
            f"Pass it as timm.create_model('{arch}', pretrained=True, "
            f"pretrained_cfg_overlay=dict(file='/path/to/checkpoint')).{hint}")
    state_dict = load_state_dict_file(path)
    state_dict = filter_fn(_Sourced(state_dict, path), model)
    for key in foreign_classifier_keys(model, state_dict):
        del state_dict[key]
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    heads = tuple(classifier_names(model))
    missing = [k for k in missing if not k.startswith(heads) and not k.endswith(DERIVED_KEY_SUFFIXES)]
    if missing or unexpected:  # filter_fn checks first; this is a last safety net
        raise CheckpointError(f'{path} does not fit {arch}: missing {missing[:5]}, '
                              f'unexpected {unexpected[:5]}')
    return model


class _Sourced(dict):
    """A state_dict that remembers the file it came from (for error messages)."""

    def __init__(self, data, source):
        super().__init__(data)
        self.source = source


def source_of(state_dict, default: str = 'checkpoint') -> str:
    return getattr(state_dict, 'source', default)


def build_model(model_cls, variant: str, pretrained: bool = False, *,
                pretrained_filter_fn: Callable, feature_cfg: Optional[dict] = None,
                **kwargs):
    """``build_model_with_cfg`` with fan_mm's checkpoint loading (see module docstring).

    ``features_only=True`` wraps the (loaded) model in timm's ``FeatureGetterNet``, which
    calls ``forward_intermediates``.
    """
    feature_cfg = dict(feature_cfg or {})
    features_only = kwargs.pop('features_only', False)
    out_indices = kwargs.pop('out_indices', feature_cfg.get('out_indices', 4))
    for key in ('feature_cls', 'output_stride', 'flatten_sequential'):
        kwargs.pop(key, None)
    model = build_model_with_cfg(model_cls, variant, pretrained=False,
                                 pretrained_filter_fn=pretrained_filter_fn, **kwargs)
    if pretrained:
        load_pretrained_file(model, pretrained_filter_fn)
    if features_only:
        model = FeatureGetterNet(model, out_indices=out_indices, prune=False)
    return model
