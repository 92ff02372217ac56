"""What every fan_mm dense backbone shares: pretrained loading, freezing, norm_eval, block compiling.

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

A family subclass provides:

* ``self.trunk`` (the timm-style model, classification naming under ``trunk.``);
* ``convert_official(state_dict)``: official checkpoint naming -> wrapper naming
  (``trunk.`` + the family's ``checkpoint_filter_fn``, extra dense keys mapped);
* ``unused_prefixes()``: wrapper-naming key prefixes a checkpoint may carry that the
  backbone does not use (``trunk.head.``, ...);
* ``new_prefixes()``: backbone key prefixes that are not in an ImageNet checkpoint;
* ``frozen_modules(frozen_stages)``: modules / parameters to freeze;
* ``variant_name``: the registered timm name of the trunk (or a description of a custom one).
"""
import inspect
import logging
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule

from ...layers.compile import (clone_tensors, begin_inference_step, compile_trunk_blocks, compile_whole_forward,
                               end_inference_step, persistent_compile_cache, uses_cuda_graphs, without_cuda_graphs)
from ...utils.compile_stats import CompileStats, describe
from ..checkpoint_utils import CheckpointError, check_state_dict, load_state_dict_file

WRAPPER_PREFIX = 'backbone.'  # mm detectors / segmentors keep the backbone here
TRUNK = 'trunk.'
# what compile_blocks=dict(scope=...) compiles: each trunk block on its own, or the whole forward as one graph
COMPILE_SCOPES = ('blocks', 'backbone')
# what runs the depthwise convolutions where the blocks compile, compile_blocks=dict(depthwise=...): cuDNN, or
# fan_mm's Triton kernels (fan_mm.layers.depthwise_triton)
DEPTHWISE_KERNELS = ('cudnn', 'triton')


def resolve_arch(cls_name: str, arch: str, sizes: Mapping[str, str], names: Iterable[str] = ()) -> str:
    """The registered timm model name that ``arch`` means, the same way for every dense backbone.

    ``arch`` is a size name (a key of ``sizes``: 'tiny', 'small', 'base' / 'medium', 'large') or a
    registered timm name of the backbone's family (a value of ``sizes``, or one of ``names``, e.g. the
    LV-ViT resolution variants ``'lvvit_m_448'``).
    """
    if arch in sizes:
        return sizes[arch]
    if arch in sizes.values() or arch in names:
        return arch
    raise ValueError(f'{cls_name}: arch={arch!r} is not a size name {list(sizes)} or a registered model '
                     f'name {sorted(set(sizes.values()) | set(names))}')


def _strip(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _tensors(n: int) -> str:
    return f'{n} tensor' + ('s' if n != 1 else '')


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
        compile_blocks: ``torch.compile`` every trunk block (see ``compile_trunk_blocks``) at the
            first forward whose input is on a CUDA device: True, or a dict of ``torch.compile``
            options (e.g. ``dict(mode='reduce-overhead')``: CUDA graphs, what the model bases under
            ``configs/_base_/models`` set). A forward on the CPU stays eager (CUDA graphs need CUDA,
            and inductor's CPU code is slow to build for little gain here) unless the dict also holds
            ``on_cpu=True``. The dict may also hold ``scope``: ``'blocks'`` (the default: each trunk
            block compiled on its own, a few small graphs for any input size) or ``'backbone'`` (the whole
            forward as one graph, see ``compile_whole_forward``: a little faster for fixed input sizes,
            slower to compile, one graph per size). And ``depthwise``: ``'cudnn'`` (the default) or
            ``'triton'``, which runs the depthwise convolutions on fan_mm's Triton kernels
            (``fan_mm.layers.depthwise_triton``; faster kernel by kernel, and in Mask R-CNN inference, on an
            H100, docs/benchmarks.md) wherever the blocks are compiled; a backbone without depthwise
            convolutions refuses it. Off by default in the classes; ``--no-compile`` in the tools (or
            ``--cfg-options model.backbone.compile_blocks=False``) turns the configs' fast path off.
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
        if isinstance(compile_blocks, dict):  # a misspelt option fails here, not at the first GPU forward
            own = {'on_cpu', 'scope', 'depthwise'}
            known = set(inspect.signature(torch.compile).parameters) - {'model'} | own
            unknown = sorted(set(compile_blocks) - known)
            if unknown:
                raise ValueError(f'compile_blocks: unknown option(s) {unknown}; torch.compile takes '
                                 f'{sorted(known - own)}, plus {sorted(own)}')
            if compile_blocks.get('scope', 'blocks') not in COMPILE_SCOPES:
                raise ValueError(f"compile_blocks: scope={compile_blocks['scope']!r}; "
                                 f'use one of {list(COMPILE_SCOPES)}')
            if compile_blocks.get('depthwise', 'cudnn') not in DEPTHWISE_KERNELS:
                raise ValueError(f"compile_blocks: depthwise={compile_blocks['depthwise']!r}; "
                                 f'use one of {list(DEPTHWISE_KERNELS)}')
        self.compile_blocks = compile_blocks
        self._blocks_compiled = False
        self._blocks_graphed = False  # compiled with CUDA graphs
        self._inference_step: Optional[int] = None
        self._compile_started: Optional[float] = None
        self._compile_stats: Optional[CompileStats] = None
        self._whole_forward: Optional[Callable] = None  # scope='backbone': the compiled forward, once made
        if isinstance(compile_blocks, dict) and compile_blocks.get('scope') == 'backbone':
            # nn.Module looks up self.forward before the pre-hooks run, so the first forward, whose pre-hook
            # compiles, must already go through the door that finds the compiled forward
            self.forward = self._forward_whole_or_eager
        if compile_blocks is not False:
            # Deferred to the first forward: subclasses prune their trunk after this __init__, and
            # only then is the input's device known (mmengine moves the model after building it). The hooks
            # stay for the model's life (a flag says when the work is done): a copy of the model, which
            # leaves the compiled calls behind (see compile_trunk_blocks), compiles again at its first
            # CUDA forward.
            self.register_forward_pre_hook(DenseBackbone._compile_before_first_forward)
            self.register_forward_hook(DenseBackbone._report_first_compiled_forward)
            # a gradient-free forward of CUDA-graph blocks is one graph generation (see begin_inference_step);
            # always_call: the step is closed when the forward raises too
            self.register_forward_pre_hook(DenseBackbone._begin_inference_step)
            self.register_forward_hook(DenseBackbone._end_inference_step, always_call=True)

    def __getstate__(self):
        state = super().__getstate__()  # drops every block's compiled call (nn.Module.__getstate__)
        state.update(_blocks_compiled=False, _blocks_graphed=False, _inference_step=None, _compile_started=None,
                     _compile_stats=None)
        state['_whole_forward'] = None  # bound to this module's weights: a copy compiles its own
        return state

    def _forward_whole_or_eager(self, *args, **kwargs):
        """``forward`` with ``compile_blocks=dict(scope='backbone')``: the compiled whole forward once the
        first forward's pre-hook has made it, the class's forward before that (and where it stays eager)."""
        if self._whole_forward is not None:
            return self._whole_forward(*args, **kwargs)
        return type(self).forward(self, *args, **kwargs)

    @staticmethod
    def _compile_before_first_forward(module: 'DenseBackbone', args) -> None:
        if module._blocks_compiled:
            return
        opts = {} if module.compile_blocks is True else dict(module.compile_blocks)
        on_cpu = bool(opts.pop('on_cpu', False))
        scope = opts.pop('scope', 'blocks')
        depthwise = opts.pop('depthwise', 'cudnn')
        device = next((a.device for a in args if isinstance(a, torch.Tensor)), None)
        if device is None:  # called with keyword arguments only: the weights' device
            device = next(module.parameters()).device
        if device.type != 'cuda' and not on_cpu:
            # stays eager on this device, and compiles should the model move to a GPU later
            if not getattr(module, '_told_eager', False):
                module._told_eager = True
                print_log(f'{type(module).__name__}: eager on {device.type} (compile_blocks applies to CUDA '
                          f'inputs)', logger='current', level=logging.INFO)
            return
        module._blocks_compiled = True
        if depthwise == 'triton':  # before compiling: the graphs then hold the Triton operator
            from ...layers.depthwise_triton import route_depthwise_to_triton, triton_available  # only when asked
            if not triton_available():  # named here, not at the first conv's call deep inside a compiled graph
                raise RuntimeError(f"{type(module).__name__}: compile_blocks depthwise='triton' needs Triton, which "
                                   f"is not installed; use depthwise='cudnn' (the default)")
            routed = route_depthwise_to_triton(module, kernel_sizes=(1, 3, 5, 7))
            if not routed:
                raise ValueError(f"{type(module).__name__}: compile_blocks depthwise='triton', but it has no "
                                 f'depthwise convolutions (stride 1, same padding, odd kernels up to 7)')
            print_log(f"{type(module).__name__}: {routed} depthwise convolutions run fan_mm's Triton kernels "
                      f"(compile_blocks depthwise='triton')", logger='current', level=logging.INFO)
        if module.with_cp and uses_cuda_graphs(opts):
            # activation checkpointing replays each block's forward during the backward; CUDA-graph trees
            # under torch.utils.checkpoint fail (pytorch/pytorch#154306, still in torch 2.11), compiled
            # kernels without CUDA graphs do not
            opts = without_cuda_graphs(opts)
            what = 'the backbone is' if scope == 'backbone' else 'the blocks are'
            print_log(f'{type(module).__name__}: with_cp=True, so {what} compiled without CUDA graphs ({opts})',
                      logger='current', level=logging.WARNING)
        # compiled for CUDA inputs only (unless on_cpu): the same model moved back to the CPU runs eagerly
        if scope == 'backbone':
            module._whole_forward = compile_whole_forward(module, cuda_only=not on_cpu, **opts)
            what = 'the whole backbone as one graph'
        else:
            what = f'{compile_trunk_blocks(module.trunk, cuda_only=not on_cpu, **opts)} trunk blocks'
        module._blocks_graphed = uses_cuda_graphs(opts)
        cache = persistent_compile_cache() if device.type == 'cuda' else None
        print_log(f'{type(module).__name__}: torch.compile on {what} ({opts or "default options"}; '
                  + (f'kernel cache {cache}; ' if cache else '') + 'off: --no-compile)',
                  logger='current', level=logging.INFO)
        # the blocks compile at their first call (inductor caches the kernels on disk for later runs):
        # say how long that first forward took and what it compiled (cache hits show whether the cache served)
        module._compile_started = time.perf_counter()
        module._compile_stats = CompileStats().start()

    @staticmethod
    def _begin_inference_step(module: 'DenseBackbone', args) -> None:
        if not module._blocks_graphed or torch.is_grad_enabled():
            return
        x = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if x is not None and x.device.type == 'cuda':
            module._inference_step = begin_inference_step(x.device)

    @staticmethod
    def _end_inference_step(module: 'DenseBackbone', args, outputs):
        token, module._inference_step = module._inference_step, None
        if token is None:
            return None
        try:
            # the returned maps may lie in CUDA-graph memory that the next generation reuses
            return None if outputs is None else clone_tensors(outputs)
        finally:
            end_inference_step(token)

    @staticmethod
    def _report_first_compiled_forward(module: 'DenseBackbone', args, outputs) -> None:
        if module._compile_started is None:
            return
        # AOTAutograd compiles a backward with static shapes only when the first backward reaches it (about as
        # long as the forward with an empty cache), after this line; with dynamic shapes it is counted here
        symbolic = isinstance(module.compile_blocks, dict) and module.compile_blocks.get('dynamic') is True
        later = ('; static-shape backward graphs compile at the first backward, after this'
                 if module.training and torch.is_grad_enabled() and not symbolic else '')
        stats = module._compile_stats.stop()
        # a graph that inductor ran without the CUDA graphs asked for is slower, silently: a warning then
        level = logging.WARNING if stats.get('cudagraph_skips') else logging.INFO
        print_log(f'{type(module).__name__}: first compiled forward {time.perf_counter() - module._compile_started:.1f} '
                  f's, {describe(stats)}{later}', logger='current', level=level)
        module._compile_started = module._compile_stats = None

    # ---- trunk pruning ---------------------------------------------------------------------
    _pruned_keys: Tuple[str, ...] = ()

    def prune_trunk(self, indices: Sequence[int]) -> None:
        """Drop what the trunk features ``indices`` do not need (later blocks / stages, final norm, head),
        through the trunk's ``prune_intermediate_layers`` (timm's API), so that no parameter is left
        without a gradient (DDP needs no ``find_unused_parameters``). The dropped keys are recorded: a
        checkpoint's weights for them are reported as unused, not as a mismatch."""
        before = set(self.trunk.state_dict())
        self.trunk.prune_intermediate_layers(list(indices), prune_norm=True, prune_head=True)
        self._pruned_keys = tuple(TRUNK + k for k in sorted(before - set(self.trunk.state_dict())))

    # ---- family hooks ------------------------------------------------------------------
    def convert_official(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Official (classification or dense-copy) naming -> this module's naming."""
        return {TRUNK + k: v for k, v in state_dict.items()}

    def unused_prefixes(self) -> Sequence[str]:
        """Wrapper-naming prefixes (or whole keys) that a checkpoint may hold and this backbone ignores:
        the pruned parts and the classifier (norm, head)."""
        return self._pruned_keys + (TRUNK + 'head.', TRUNK + 'norm.')

    def new_prefixes(self) -> Sequence[str]:
        """Prefixes of this module's keys that no ImageNet checkpoint provides."""
        return ()

    def frozen_modules(self, frozen_stages: int) -> List[Union[nn.Module, nn.Parameter]]:
        return []

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
        (dense-only layers). Anything else that disagrees raises ``CheckpointError`` (the one message of
        ``checkpoint_utils.check_state_dict``: the keys, and the registered variant the file looks like).
        Works on a module built on the meta device.
        """
        state_dict = self.to_wrapper_naming(state_dict)
        own = self.state_dict()
        new, unused = check_state_dict(
            f'{type(self).__name__} ({self.variant_name})', own, state_dict, source,
            ignore_missing=tuple(self.new_prefixes()), ignore_unexpected=tuple(self.unused_prefixes()),
            variant=self.variant_name, guess_prefix=TRUNK)
        return {k: v for k, v in state_dict.items() if k in own}, unused, new

    def describe_match(self, loaded: int, unused: Sequence[str], new: Sequence[str], source: str) -> str:
        """One plain-words line about what a pretrained load did."""
        lines = [f'{type(self).__name__} ({self.variant_name}): loaded {loaded} tensors from {source}.']
        if unused:
            lines.append('Not used by this backbone (expected: the classifier and parts no requested '
                         'output needs): '
                         + ', '.join(f'{p} ({_tensors(len(ks))})' for p, ks in _group(unused).items()) + '.')
        if new:
            lines.append('Not in the checkpoint, trained from scratch (expected: layers only the dense '
                         'model has): '
                         + ', '.join(f'{p} ({_tensors(len(ks))})' for p, ks in _group(new).items()) + '.')
        return ' '.join(lines)

    def load_pretrained(self, path: str, prefix: Optional[str] = None) -> Dict[str, List[str]]:
        """Load, check and report an official or mm-style checkpoint (see class doc); returns the
        backbone keys the file does not have (``missing``: dense-only layers) and the file keys this
        backbone does not use (``unexpected``)."""
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
        return dict(missing=list(new), unexpected=list(unused))

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
