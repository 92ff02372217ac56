"""The one way fan_mm builds a timm-style model and loads an official checkpoint file into it.

Every family file (``fan``, ``fan_swin``, ``lvvit``) builds its registered models with ``build_model``
(timm's ``build_model_with_cfg`` pattern) and hands it its ``checkpoint_filter_fn``, a pure key remap
(official naming -> the timm model's). ``load_pretrained_file`` then does the rest for all of them:

    load_pretrained_file(model, filter_fn, path)
      -> checkpoint_utils.load_state_dict_file(path)      read (weights_only first), unwrap containers
      -> filter_fn(state_dict, model)                     the family's remap
      -> check_against_model(state_dict, model, path)     -> checkpoint_utils.check_state_dict
      -> model.load_state_dict

timm's own loader reads ``pretrained_cfg['file']`` with a bare ``torch.load`` and reports a wrong or broken
file with torch's messages (a zip-archive error, a list of hundreds of missing keys); this route names the
file, the keys that differ and the registered variant the file looks like. The dense mm backbones
(``backbones.base.DenseBackbone.load_pretrained``) read files with the same ``load_state_dict_file``, remap
with the same ``checkpoint_filter_fn`` and check with the same ``check_state_dict``.
"""
from typing import Callable, Iterable, Mapping, Optional, Sequence

import torch
from torch import nn
from timm.models import build_model_with_cfg
from timm.models._features import FeatureGetterNet

from .checkpoint_utils import (DERIVED_KEY_SUFFIXES, CheckpointError, SourcedStateDict, check_state_dict,
                               load_state_dict_file)


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


def _dense_copy_hint(model: nn.Module):
    """The sentence for a dense-prediction file (no classifier) given to a classifier."""
    heads = tuple(classifier_names(model)) + ('norm.',)

    def hint(missing, unexpected):
        if missing and all(k.startswith(heads) for k in missing):
            return ('The file has no classifier (norm / head): it looks like a dense-prediction backbone '
                    'checkpoint; load it with the fan_mm dense backbones (FANHybrid, FANViT, FANSwin, '
                    'LVViT) instead.')
        return ''
    return hint


def check_against_model(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                        source: str = 'checkpoint', ignore_missing: Iterable[str] = (),
                        ignore_unexpected: Iterable[str] = ()):
    """Raise ``CheckpointError`` unless ``state_dict`` (already remapped) fits ``model``.

    A classifier whose class count differs from the model's is not an error (fine-tuning
    to another label set); everything else that differs is reported by ``check_state_dict``.
    """
    name = getattr(model, 'pretrained_cfg', {}).get('architecture') or type(model).__name__
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    foreign = foreign_classifier_keys(model, state_dict)
    found = {k: v for k, v in state_dict.items() if k not in foreign}
    check_state_dict(name, expected, found, source,
                     ignore_missing=tuple(ignore_missing) + tuple(foreign),
                     ignore_unexpected=tuple(ignore_unexpected), hint=_dense_copy_hint(model))


def load_pretrained_file(model: nn.Module, filter_fn: Callable, path: Optional[str] = None):
    """Load an official checkpoint file into ``model`` (a timm-style classifier); see the module doc.

    ``path`` defaults to ``model.pretrained_cfg['file']``. A classifier of another class count is left
    at its initialisation (fine-tuning), as timm does. On the meta device the file is read and checked
    only.
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
    state_dict = filter_fn(SourcedStateDict(load_state_dict_file(path), path), model)
    check_against_model(state_dict, model, path)
    for key in foreign_classifier_keys(model, state_dict):
        del state_dict[key]
    if any(p.is_meta for p in model.parameters()):
        return model
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    heads = tuple(classifier_names(model))
    missing = [k for k in missing if not k.startswith(heads) and not k.endswith(DERIVED_KEY_SUFFIXES)]
    if missing or unexpected:  # check_against_model checks first; this is a last safety net
        raise CheckpointError(f'{path} does not fit {arch}: missing {missing[:5]}, '
                              f'unexpected {unexpected[:5]}')
    return model


def build_model(model_cls, variant: str, pretrained: bool = False, *,
                pretrained_filter_fn: Callable, feature_cfg: Optional[dict] = None,
                **kwargs):
    """``build_model_with_cfg`` with fan_mm's checkpoint loading (``load_pretrained_file``).

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
