"""What every fan_mm dense backbone shares: pretrained loading, freezing, norm_eval, pyramids.

A dense backbone (``FANHybrid``, ``FANViT``, ``LVViT``, ``FANSwin``) is a thin
``mmengine.model.BaseModule`` around a timm-style classification model (the *trunk*, an
attribute named ``trunk``), plus the few layers dense prediction adds (e.g. FAN's
``learnable_downsample``, a feature pyramid). Everything below is family-independent:

* ``DenseBackbone`` loads ``init_cfg=dict(type='Pretrained', checkpoint=...)`` from the
  official ImageNet files (any container, with or without ``module.``) and from mm-style
  files whose keys start with ``backbone.``; it checks every key and shape, names the
  variant a wrong file looks like, and says in plain words which file weights are unused
  and which backbone weights start from scratch (both expected: the classifier head is
  unused, the dense layers are new). It also implements ``frozen_stages`` and
  ``norm_eval`` through one family hook, ``frozen_modules``.
* ``SimplePyramid``: the ViTDet simple feature pyramid (scale ops only), for plain 1/16
  trunks under FPN / UPerNet.
* ``LayerNorm2d``: standard (biased-variance) channels-first LayerNorm.

A family subclass provides:

* ``self.trunk`` (the timm-style model, classification naming under ``trunk.``);
* ``convert_official(state_dict)``: official checkpoint naming -> wrapper naming
  (``trunk.`` + the family's ``checkpoint_filter_fn``, extra dense keys mapped);
* ``unused_prefixes()``: wrapper-naming key prefixes a checkpoint may carry that the
  backbone does not use (``trunk.head.``, ...);
* ``new_prefixes()``: backbone key prefixes that are not in an ImageNet checkpoint;
* ``frozen_modules(frozen_stages)``: modules / parameters to freeze;
* optionally ``variant_name`` (str, for messages) and ``variant_candidates()``.
"""
import logging
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ..checkpoint_utils import (CheckpointError, compare_state_dicts, describe_mismatch,
                                guess_variant, load_state_dict_file, registered_variants)

WRAPPER_PREFIX = 'backbone.'  # mm detectors / segmentors keep the backbone here
TRUNK = 'trunk.'


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (standard biased variance)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
                         self.bias, self.eps)
        return x.permute(0, 3, 1, 2).contiguous()


class SimplePyramid(nn.Module):
    """ViTDet's simple feature pyramid: 1/16 maps -> strides 4, 8, 16, 32.

    Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection" (ECCV
    2022), Sec. 3 / Fig. 2c: scale x4 is two stride-2 transposed convs with LN + GELU
    between them (channels C -> C/2 -> C/4), x2 one transposed conv (C -> C/2), x1 the
    identity, x0.5 a 2x2 max pool. ViTDet builds every level from the last map; here each
    level may also take its own map (pass one map per level: BEiT / LV-ViT style taps).
    The 1x1 / 3x3 output convs of ViTDet's neck are left to the FPN / UPerNet that
    follows; ``out_norm`` puts a LayerNorm on each level instead, so that the decoder sees
    features of comparable scale.

    Args:
        in_channels: channels of the 1/16 input map(s).
        scales: one scale per output level, each in (4, 2, 1, 0.5).
        out_norm: LayerNorm2d on each output.
    """

    def __init__(self, in_channels: int, scales: Sequence[float] = (4, 2, 1, 0.5),
                 out_norm: bool = True):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.ops = nn.ModuleList()
        self.out_channels = []
        c = in_channels
        for scale in self.scales:
            if scale == 4:
                op = nn.Sequential(
                    nn.ConvTranspose2d(c, c // 2, 2, stride=2), LayerNorm2d(c // 2, eps=1e-6),
                    nn.GELU(), nn.ConvTranspose2d(c // 2, c // 4, 2, stride=2))
                out = c // 4
            elif scale == 2:
                op, out = nn.ConvTranspose2d(c, c // 2, 2, stride=2), c // 2
            elif scale == 1:
                op, out = nn.Identity(), c
            elif scale == 0.5:
                op, out = nn.MaxPool2d(2, stride=2), c
            else:
                raise ValueError(f'SimplePyramid: scale {scale} is not one of 4, 2, 1, 0.5')
            self.ops.append(op)
            self.out_channels.append(out)
        self.norms = nn.ModuleList(
            LayerNorm2d(c, eps=1e-6) if out_norm else nn.Identity() for c in self.out_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(feats) == 1:
            feats = list(feats) * len(self.ops)
        if len(feats) != len(self.ops):
            raise ValueError(f'SimplePyramid takes 1 or {len(self.ops)} maps, got {len(feats)}')
        return [norm(op(f)) for op, norm, f in zip(self.ops, self.norms, feats)]


def compile_trunk_blocks(model: nn.Module, **compile_options) -> int:
    """``torch.compile`` in place every block of ``model``: each child of a ``ModuleList`` / ``Sequential``
    whose name ends in ``blocks`` (FAN's ``blocks``, ``cls_attn_blocks`` and ConvNeXt stem blocks, the
    ViT blocks of LV-ViT, the blocks of every Swin stage, timm's Swin / ConvNeXt). Returns how many.

    Regional compilation rather than one graph of the whole backbone: blocks of one class share the
    compiled code, so compiling takes seconds, a graph break in the glue between blocks (feature taps,
    checkpointing, pyramids) costs nothing, and new input sizes recompile only the small block graphs.
    Parameter names do not change (``nn.Module.compile``), so checkpoints load as before.

    With CUDA graphs (``mode='reduce-overhead'`` or ``'max-autotune'``) each block's outputs are cloned
    when gradients are off (validation, testing): CUDA-graph trees hand a graph's output memory back when
    the graph runs again, and the blocks of one class share theirs, so an output kept past the next
    block (a feature map the backbone returns) would be overwritten ("accessing tensor output of
    CUDAGraphs that has been overwritten"). In training autograd keeps them alive until the backward.

    Dynamo keeps at most ``recompile_limit`` (default 8) compiled versions of one function and runs it
    eagerly after that, with only a warning. Here one ``forward`` serves every block of a class, and its
    versions multiply: FAN-Hybrid's ConvNeXt blocks alone see three (channels, input dtype) pairs under
    autocast, each with gradients on and off (training, validation) and, with several input sizes
    (detection), static and dynamic shapes: a toy Mask R-CNN run with five input scales went past 8
    in its first validation, and those blocks fell back to eager.
    The limit is raised to ``MIN_RECOMPILE_LIMIT`` (never lowered).

    Under DDP, dynamo's ``optimize_ddp`` would split each block graph again at gradient-bucket boundaries,
    which is for compiling a whole model: blocks compiled one by one already give DDP its overlap, since
    each block's backward runs (and its gradients reach DDP's hooks) on its own. With dynamic shapes that
    split fails in torch 2.11 ("'float' object has no attribute 'meta'", 2-GPU toy Mask R-CNN run), so
    it is switched off.
    """
    import torch._dynamo.config as dynamo_config
    _raise_recompile_limit(MIN_RECOMPILE_LIMIT)
    dynamo_config.optimize_ddp = False
    n = 0
    for name, module in model.named_modules():
        if name.rsplit('.', 1)[-1].endswith('blocks') and isinstance(module, (nn.ModuleList, nn.Sequential)):
            for block in module:
                if _uses_cuda_graphs(compile_options):
                    _compile_with_inference_clones(block, compile_options)
                else:
                    block.compile(**compile_options)
                n += 1
    return n


MIN_RECOMPILE_LIMIT = 64


def _raise_recompile_limit(limit: int) -> None:
    import torch._dynamo.config as dynamo_config
    if dynamo_config.recompile_limit < limit:
        dynamo_config.recompile_limit = limit


def _uses_cuda_graphs(compile_options: Mapping) -> bool:
    return (compile_options.get('mode') in ('reduce-overhead', 'max-autotune')
            or bool((compile_options.get('options') or {}).get('triton.cudagraphs')))


def _clone_tensors(out):
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, (tuple, list)):
        return type(out)(_clone_tensors(o) for o in out)
    return out


def _compile_with_inference_clones(block: nn.Module, compile_options: Mapping) -> None:
    """``block.forward`` compiled, its outputs cloned when gradients are off (see compile_trunk_blocks)."""
    compiled_forward = torch.compile(block.forward, **compile_options)

    def forward(*args, **kwargs):
        out = compiled_forward(*args, **kwargs)
        if torch.is_grad_enabled():
            return out
        return _clone_tensors(out)
    block.forward = forward  # an instance attribute: no new submodule, parameter names unchanged
    block.compiled_for_cuda_graphs = True


def _strip(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _group(keys: Iterable[str]) -> Dict[str, List[str]]:
    """Group keys by module for short log lines (``trunk.head``, ``learnable_downsample``, ...)."""
    groups: Dict[str, List[str]] = {}
    for k in keys:
        parts = k.split('.')
        g = '.'.join(parts[:2]) if parts[0] == TRUNK[:-1] else parts[0]
        groups.setdefault(g, []).append(k)
    return groups


class DenseBackbone(BaseModule):
    """Base class of the fan_mm dense backbones (see the module docstring).

    Args:
        frozen_stages: freeze what ``frozen_modules(frozen_stages)`` returns (family
            specific; -1 freezes nothing).
        norm_eval: keep BatchNorm layers in eval mode (running statistics frozen) while
            training.
        with_cp: activation checkpointing in the trunk blocks (saves memory, costs one
            more forward per block; BatchNorm layers inside a recomputed block update their
            running statistics twice per step, as with any activation checkpointing).
        init_cfg: mmengine init config; ``dict(type='Pretrained', checkpoint=PATH)`` loads
            an official ImageNet checkpoint or an mm-style one (``backbone.`` keys, e.g.
            from ``tools/convert_checkpoint.py`` or a trained detector); the optional
            ``prefix`` is honoured as in mmengine.
        compile_blocks: ``torch.compile`` every trunk block (see ``compile_trunk_blocks``) before the
            first forward: True, or a dict of ``torch.compile`` options (e.g.
            ``dict(mode='max-autotune-no-cudagraphs')``). Off by default.
    """

    variant_name: str = 'this backbone'

    def __init__(self, frozen_stages: int = -1, norm_eval: bool = False, with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 compile_blocks: Union[bool, dict] = False):
        super().__init__(init_cfg=init_cfg)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        if not isinstance(compile_blocks, (bool, dict)):
            raise TypeError(f'compile_blocks must be a bool or a dict of torch.compile options, '
                            f'got {type(compile_blocks).__name__}')
        self.compile_blocks = compile_blocks
        if compile_blocks is not False:
            # Deferred to the first forward: subclasses prune their trunk after this __init__.
            self._compile_hook = self.register_forward_pre_hook(DenseBackbone._compile_before_first_forward)

    @staticmethod
    def _compile_before_first_forward(module: 'DenseBackbone', args) -> None:
        module._compile_hook.remove()
        opts = {} if module.compile_blocks is True else dict(module.compile_blocks)
        n = compile_trunk_blocks(module.trunk, **opts)
        print_log(f'{type(module).__name__}: torch.compile on {n} trunk blocks ({opts or "default options"})',
                  logger='current', level=logging.INFO)

    # ---- family hooks ------------------------------------------------------------------
    def convert_official(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Official (classification or dense-copy) naming -> this module's naming."""
        return {TRUNK + k: v for k, v in state_dict.items()}

    def unused_prefixes(self) -> Sequence[str]:
        """Wrapper-naming prefixes (or whole keys) that a checkpoint may hold and this backbone ignores."""
        return ()

    def new_prefixes(self) -> Sequence[str]:
        """Prefixes of this module's keys that no ImageNet checkpoint provides."""
        return ()

    def frozen_modules(self, frozen_stages: int) -> List[Union[nn.Module, nn.Parameter]]:
        return []

    def variant_candidates(self) -> Mapping[str, Callable]:
        """Registered classification variants to compare a wrong checkpoint against."""
        return registered_variants()

    # ---- pretrained weights --------------------------------------------------------------
    def init_weights(self):
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
        if not pretrained:
            return super().init_weights()
        others = [c for c in cfgs if c is not None and c not in pretrained]
        if others:  # e.g. a Normal init for the dense layers, applied before the checkpoint
            init_cfg, self.init_cfg = self.init_cfg, others
            try:
                super().init_weights()
            finally:
                self.init_cfg = init_cfg
        # Otherwise the modules keep their construction-time init (the trunk's is the official one) and
        # the checkpoint overwrites what it has; re-running it would only cost time.
        cfg = pretrained[-1]
        self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
        self._is_init = True

    def to_wrapper_naming(self, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Any accepted checkpoint naming -> this module's naming.

        mm-style files (a detector / segmentor, or ``tools/convert_checkpoint.py`` output)
        hold the backbone under ``backbone.``; inside it the keys are either already in this
        module's naming (``trunk.…``) or in the official naming (the NVlabs dense copies).
        """
        state_dict = dict(state_dict)
        if any(k.startswith(WRAPPER_PREFIX) for k in state_dict):
            state_dict = _strip(state_dict, WRAPPER_PREFIX)
        if any(k.startswith(TRUNK) for k in state_dict):
            return state_dict
        return self.convert_official(state_dict)

    def match_pretrained(self, state_dict: Mapping[str, torch.Tensor], source: str
                         ) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
        """Check a checkpoint (any accepted naming) against this module.

        Returns ``(to_load, unused, new)``: the tensors to load (this module's naming), the file keys this
        backbone does not use (classifier, pruned parts) and this module's keys the file does not have
        (dense-only layers). Anything else that disagrees raises ``CheckpointError`` naming the keys and
        the registered variant the file looks like. Works on a module built on the meta device.
        """
        state_dict = self.to_wrapper_naming(state_dict)
        own = self.state_dict()
        missing, unexpected, mismatched = compare_state_dicts(own, state_dict)
        unused = [k for k in unexpected if k.startswith(tuple(self.unused_prefixes()))]
        new = [k for k in missing if k.startswith(tuple(self.new_prefixes()))]
        bad_missing = [k for k in missing if k not in new]
        bad_unexpected = [k for k in unexpected if k not in unused]
        if bad_missing or bad_unexpected or mismatched:
            msg = (f'{source} does not fit {type(self).__name__} ({self.variant_name}): '
                   f'{describe_mismatch(bad_missing, bad_unexpected, mismatched)}.')
            trunk_sd = _strip(state_dict, TRUNK)
            guess = guess_variant(trunk_sd, self.variant_candidates()) if trunk_sd else None
            if guess and guess[1] > 0.9:
                msg += (f' The file looks like a {guess[0]} checkpoint '
                        f'({guess[1]:.0%} of its keys and shapes fit that model).')
            elif guess:
                msg += (' It does not look like any registered FAN / LV-ViT variant either '
                        f'(closest: {guess[0]}, {guess[1]:.0%} of keys fit).')
            raise CheckpointError(msg)
        return {k: v for k, v in state_dict.items() if k in own}, unused, new

    def describe_match(self, loaded: int, unused: Sequence[str], new: Sequence[str], source: str) -> str:
        """One plain-words line about what a pretrained load did."""
        lines = [f'{type(self).__name__} ({self.variant_name}): loaded {loaded} tensors from {source}.']
        if unused:
            lines.append('Not used by this backbone (expected: the classifier and parts no requested '
                         'output needs): '
                         + ', '.join(f'{p} ({len(ks)} tensors)' for p, ks in _group(unused).items()) + '.')
        if new:
            lines.append('Not in the checkpoint, trained from scratch (expected: layers only the dense '
                         'model has): '
                         + ', '.join(f'{p} ({len(ks)} tensors)' for p, ks in _group(new).items()) + '.')
        return ' '.join(lines)

    def load_pretrained(self, path: str, prefix: Optional[str] = None) -> None:
        """Load, check and report an official or mm-style checkpoint (see class doc)."""
        state_dict = load_state_dict_file(path)
        if prefix:
            sub = _strip(state_dict, prefix)
            if not sub:
                raise CheckpointError(f'{path} has no weights under prefix {prefix!r} '
                                      f'(init_cfg prefix); first keys: {sorted(state_dict)[:5]}')
            state_dict = sub
        load, unused, new = self.match_pretrained(state_dict, path)
        if not any(p.is_meta for p in self.parameters()):  # on meta: checked only, nothing to copy into
            result = self.load_state_dict(load, strict=False)
            assert not result.unexpected_keys, result.unexpected_keys
        print_log(self.describe_match(len(load), unused, new, path), logger='current', level=logging.INFO)

    # ---- freezing and norm_eval ------------------------------------------------------------
    def _freeze_stages(self) -> None:
        for item in self.frozen_modules(self.frozen_stages):
            if isinstance(item, nn.Parameter):
                item.requires_grad = False
                continue
            item.eval()
            for p in item.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
