"""Reading official FAN / LV-ViT checkpoint files and explaining why one does not fit.

Shared by every model family: the family files only remap keys (their
``checkpoint_filter_fn``), this module does the I/O, unwraps the containers the official
training scripts write, and turns a key/shape disagreement into a message that says which
keys differ and which registered variant the file looks like.
"""
import os.path as osp
import zipfile
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import torch

# Containers used by the official training scripts (timm's train.py writes ``state_dict``
# and ``state_dict_ema``; DeiT-style scripts write ``model``). The EMA weights are the
# ones the papers evaluate when both are present.
CONTAINER_KEYS = ('state_dict_ema', 'state_dict', 'model', 'module')
# Buffers a model builds itself; checkpoints may or may not carry them.
DERIVED_KEY_SUFFIXES = ('relative_position_index', 'attn_mask', 'num_batches_tracked')


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint file onto the CPU; name the file in every error."""
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint file not found: {path}')
    try:
        # Plain tensors first (safe); the official files may also pickle an
        # argparse.Namespace of training args, which needs the full unpickler.
        try:
            return torch.load(path, map_location='cpu', weights_only=True)
        except Exception as safe_err:  # noqa: BLE001 - retried below, reported if both fail
            if isinstance(safe_err, (EOFError, zipfile.BadZipFile)) or \
                    'failed finding central directory' in str(safe_err):
                raise
            return torch.load(path, map_location='cpu', weights_only=False)
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many types for broken files
        raise CheckpointError(
            f'could not read checkpoint {path} ({osp.getsize(path)} bytes): it is '
            f'truncated or not a PyTorch checkpoint ({type(err).__name__}: {err})') from err


def unwrap_state_dict(checkpoint, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Return the flat ``{name: tensor}`` dict inside an official checkpoint.

    Accepts a flat state_dict or one nested under ``state_dict_ema``, ``state_dict``,
    ``model`` (first found, in that order), and strips a ``module.`` (DataParallel) prefix.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source} holds a {type(checkpoint).__name__}, not a state_dict')
    state_dict = checkpoint
    for key in CONTAINER_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            state_dict = checkpoint[key]
            break
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f'{source} contains no tensors (top-level keys: '
                              f'{sorted(checkpoint)[:8]})')
    if all(k.startswith('module.') for k in tensors):
        tensors = {k[len('module.'):]: v for k, v in tensors.items()}
    return tensors


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """``read_checkpoint`` + ``unwrap_state_dict``."""
    return unwrap_state_dict(read_checkpoint(path), source=path)


def flat_state_dict(state_dict, source: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Unwrap an official container unless ``state_dict`` is already flat (the first step of every
    family's ``checkpoint_filter_fn``, which may be handed either)."""
    source = source or source_of(state_dict)
    if any(isinstance(state_dict.get(k), Mapping) for k in CONTAINER_KEYS) or \
            any(k.startswith('module.') for k in state_dict):
        return unwrap_state_dict(state_dict, source)
    return dict(state_dict)


class SourcedStateDict(dict):
    """A state_dict that remembers the file it came from, so that a filter function's errors name it."""

    def __init__(self, data, source: str):
        super().__init__(data)
        self.source = source


def source_of(state_dict, default: str = 'checkpoint') -> str:
    return getattr(state_dict, 'source', default)


def _is_derived(key: str) -> bool:
    return key.endswith(DERIVED_KEY_SUFFIXES)


def compare_state_dicts(expected: Mapping[str, Tuple[int, ...]],
                        found: Mapping[str, torch.Tensor]):
    """Missing keys, unexpected keys and ``(key, found_shape, expected_shape)`` mismatches.

    ``expected`` maps names to shapes (a model's ``state_dict`` works too). Buffers that
    the model derives itself are not reported as missing.
    """
    exp_shapes = {k: tuple(getattr(v, 'shape', v)) for k, v in expected.items()}
    missing = sorted(k for k in exp_shapes if k not in found and not _is_derived(k))
    unexpected = sorted(k for k in found if k not in exp_shapes)
    mismatched = sorted((k, tuple(found[k].shape), exp_shapes[k])
                        for k in exp_shapes if k in found
                        and tuple(found[k].shape) != exp_shapes[k])
    return missing, unexpected, mismatched


def match_score(expected: Mapping[str, Tuple[int, ...]], found: Mapping[str, torch.Tensor]):
    """Fraction of the union of keys that agree in name and shape (1.0 = same variant)."""
    missing, unexpected, mismatched = compare_state_dicts(expected, found)
    total = len(set(expected) | set(found)) or 1
    return 1.0 - (len(missing) + len(unexpected) + len(mismatched)) / total


def _examples(items: List, limit: int = 5) -> str:
    shown = ', '.join(str(i) for i in items[:limit])
    return shown + (f', ... ({len(items) - limit} more)' if len(items) > limit else '')


def describe_mismatch(missing, unexpected, mismatched) -> str:
    """Plain-words summary of a key/shape disagreement."""
    parts = []
    if missing:
        parts.append(f'{len(missing)} weights the model needs are not in the file '
                     f'(e.g. {_examples(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} weights in the file have no place in the model '
                     f'(e.g. {_examples(unexpected)})')
    if mismatched:
        shown = [f'{k}: file {tuple(a)} vs model {tuple(b)}' for k, a, b in mismatched]
        parts.append(f'{len(mismatched)} weights have the wrong shape ({_examples(shown, 3)})')
    return '; '.join(parts) if parts else 'all keys and shapes agree'


def guess_variant(found: Mapping[str, torch.Tensor],
                  candidates: Mapping[str, Callable[[], Mapping[str, Tuple[int, ...]]]],
                  ) -> Optional[Tuple[str, float]]:
    """Name and score of the candidate whose expected keys/shapes fit ``found`` best.

    ``candidates`` maps a variant name to a callable returning its expected
    ``{key: shape}`` (build the model on the ``meta`` device to make this cheap).
    """
    best = None
    for name, expected_fn in candidates.items():
        try:
            score = match_score(expected_fn(), found)
        except Exception:  # noqa: BLE001 - a candidate that cannot be built does not match
            continue
        if best is None or score > best[1]:
            best = (name, score)
    return best


def shapes_on_meta(build: Callable[[], torch.nn.Module]) -> Dict[str, Tuple[int, ...]]:
    """``{key: shape}`` of a model built on the meta device (no memory, no init cost)."""
    with torch.device('meta'):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def mismatch_message(model_name: str, source: str, missing, unexpected, mismatched,
                     guess: Optional[Tuple[str, float]] = None, variant: Optional[str] = None) -> str:
    """The one wording of "file ``source`` does not fit ``model_name``": what differs and, from ``guess``
    (``guess_variant``'s answer), which registered variant the file looks like. ``variant`` is the
    registered name of the model itself (default ``model_name``): a guess naming it adds nothing."""
    msg = (f'{source} does not fit {model_name}: '
           f'{describe_mismatch(missing, unexpected, mismatched)}.')
    if guess and guess[0] != (variant or model_name):
        if guess[1] > 0.9:
            msg += f' The file looks like a {guess[0]} checkpoint ({guess[1]:.0%} of keys fit).'
        else:
            msg += (' It does not look like any known variant either (closest: '
                    f'{guess[0]}, {guess[1]:.0%} of keys fit).')
    return msg


def check_state_dict(model_name: str, expected: Mapping[str, Tuple[int, ...]],
                     found: Mapping[str, torch.Tensor], source: str,
                     candidates: Optional[Mapping[str, Callable]] = None,
                     ignore_missing: Iterable[str] = (), ignore_unexpected: Iterable[str] = (),
                     variant: Optional[str] = None, guess_prefix: str = '',
                     hint: Optional[Callable[[List[str], List[str]], str]] = None
                     ) -> Tuple[List[str], List[str]]:
    """The one check of a checkpoint against a model; raise ``CheckpointError`` unless ``found`` fits.

    ``ignore_*`` are key prefixes (or whole keys) that may legitimately be absent / extra (the classifier
    head when a dense backbone loads a classification checkpoint, layers only the dense model has).
    Returns those ignored ``(missing, unexpected)`` keys. Otherwise the message (``mismatch_message``)
    names the keys and the registered variant the file looks like: ``candidates`` (default: the family of
    ``found``, see ``variant_candidates``) are compared with the keys of ``found`` under ``guess_prefix``
    (classification naming). ``hint(missing, unexpected)`` may add a sentence for a known kind of mistake.
    """
    missing, unexpected, mismatched = compare_state_dicts(expected, found)
    ok_missing = [k for k in missing if k.startswith(tuple(ignore_missing))]
    ok_unexpected = [k for k in unexpected if k.startswith(tuple(ignore_unexpected))]
    missing = [k for k in missing if k not in ok_missing]
    unexpected = [k for k in unexpected if k not in ok_unexpected]
    if not (missing or unexpected or mismatched):
        return ok_missing, ok_unexpected
    guess_from = {k[len(guess_prefix):]: v for k, v in found.items() if k.startswith(guess_prefix)}
    if candidates is None:
        candidates = variant_candidates(guess_from)
    guess = guess_variant(guess_from, candidates) if guess_from and candidates else None
    msg = mismatch_message(model_name, source, missing, unexpected, mismatched, guess, variant)
    if hint is not None:
        msg = ' '.join(filter(None, (msg, hint(missing, unexpected))))
    raise CheckpointError(msg)


# Registered timm names of the families whose checkpoints a wrong file may come from.
VARIANT_PATTERNS = ('fan_*', 'lvvit_*')
_SHAPES_CACHE: Dict[str, Dict[str, Tuple[int, ...]]] = {}


def variant_shapes(name: str) -> Dict[str, Tuple[int, ...]]:
    """``{key: shape}`` of the registered timm model ``name`` (built once, on meta)."""
    if name not in _SHAPES_CACHE:
        import timm  # local: checkpoint_utils itself does not need timm
        _SHAPES_CACHE[name] = shapes_on_meta(lambda: timm.create_model(name, pretrained=False))
    return _SHAPES_CACHE[name]


def registered_variants(patterns: Iterable[str] = VARIANT_PATTERNS
                        ) -> Dict[str, Callable[[], Dict[str, Tuple[int, ...]]]]:
    """Candidates for ``guess_variant``: every registered FAN / LV-ViT / FAN-Swin model.

    Families register their timm models on import, so whatever fan_mm has imported is
    considered (a family on another branch simply is not a candidate yet).
    """
    import timm
    names = sorted({n for p in patterns for n in timm.list_models(p)})
    return {n: (lambda n=n: variant_shapes(n)) for n in names}


# A key that only one family's checkpoints have -> the registered names to compare with.
_FAMILY_SIGNATURES = (
    ('aux_head.weight', lambda n: n.startswith('lvvit_')),
    ('layers.0.blocks.0.attn.relative_position_bias_table', lambda n: n.startswith('fan_swin_')),
    ('cls_attn_blocks.0.norm1.weight',
     lambda n: n.startswith('fan_') and not n.startswith('fan_swin_')),
)


def variant_candidates(found: Optional[Mapping[str, torch.Tensor]] = None) -> Dict[str, Callable]:
    """``{model name: () -> {key: shape}}`` of the registered FAN / LV-ViT / FAN-Swin classifiers.

    With ``found`` (a checkpoint's tensors, classification naming) only the family whose signature key it
    holds is listed, if any: every candidate is built (on the meta device) to compare shapes, which takes
    seconds for all two dozen variants.
    """
    # importing the package registers every family; lazily, as the families import this module
    import fan_mm.models  # noqa: F401
    candidates = registered_variants()
    for key, in_family in _FAMILY_SIGNATURES:
        if found is not None and key in found:
            return {n: fn for n, fn in candidates.items() if in_family(n)}
    return candidates
