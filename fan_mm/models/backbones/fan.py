"""FAN dense backbones for mmdet / mmseg: ``FANHybrid`` and ``FANViT``.

Both wrap the timm-style ``fan_mm.models.fan.FAN`` (attribute ``trunk``, official key names below it) and
read its features through ``FAN.forward_intermediates``, so classification and dense prediction share one
implementation and the official ImageNet checkpoints load unchanged (``init_cfg=dict(type='Pretrained',
checkpoint=...)``).

Differences from the NVlabs dense copies (``segmentation/mmseg/models/backbones/fan.py``,
``detection/models/fan.py``):

* The Fourier positional encoding is the classification one (floor division), i.e. the function the
  ImageNet weights were trained with; the NVlabs dense copies use true division (a different encoding).
* ``drop_path_rate``, ``with_cp``, ``frozen_stages``, ``norm_eval`` work (the NVlabs segmentation classes
  ignore every argument: drop path 0; the detection classes hard-code drop path 0.3 and checkpointing).
* Parts no output needs are removed (classifier norm / head always; class attention and later blocks when
  no output uses them), so DDP needs no ``find_unused_parameters``.
* BatchNorm is plain ``BatchNorm2d`` (NVlabs: SyncBatchNorm); use mmengine's ``sync_bn`` option for
  multi-GPU training.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
import torch.nn as nn
from timm.layers import LayerNorm2d

from ...registry import register_model
from .. import fan as fan_models
from ..fan import FAN, checkpoint_filter_fn
from ..necks import SimplePyramid
from .base import TRUNK, DenseBackbone, resolve_arch

HYBRID_ARCHS = {
    'tiny': 'fan_tiny_8_p4_hybrid',
    'small': 'fan_small_12_p4_hybrid',
    'base': 'fan_base_16_p4_hybrid',
    'large': 'fan_large_16_p4_hybrid',
}
VIT_ARCHS = {
    'tiny': 'fan_tiny_12_p16_224',
    'small': 'fan_small_12_p16_224',
    'base': 'fan_base_18_p16_224',
    'large': 'fan_large_24_p16_224',
}
# FAN block whose tokens are the third (stride-16) output in the NVlabs dense hybrids: the last block,
# except for large (block 18 of 22).
HYBRID_BLOCK_INDEX = {'fan_large_16_p4_hybrid': 18}
# Same-scale taps (SETR) for FAN-ViT: the NVlabs segmentation fan_small_12_p16_224 returns blocks 4, 7, 11
# and the class-attention output; deeper models take the same relative depths.
VIT_SINGLE_SCALE_INDICES = {12: (4, 7, 11, -1), 18: (6, 11, 17, -1), 24: (8, 15, 23, -1)}
DENSE_ONLY_KEYS = fan_models.DENSE_ONLY_PREFIXES
_FAN_ARGS = ('patch_size', 'embed_dim', 'depth', 'num_heads', 'mlp_ratio', 'qkv_bias', 'hybrid_depths',
             'hybrid_dims', 'cls_attn_layers', 'use_pos_embed', 'eta', 'tokens_norm', 'in_chans')


def _build_trunk(arch: Union[str, dict], archs: Dict[str, str], hybrid: bool, **kwargs) -> Tuple[FAN, str]:
    """The timm FAN for ``arch`` (a size name, a registered model name, or a dict of FAN arguments)."""
    if isinstance(arch, str):
        name = resolve_arch('FANHybrid' if hybrid else 'FANViT', arch, archs)
        return timm.create_model(name, pretrained=False, **kwargs), name
    if not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or a dict of FAN arguments, got {type(arch).__name__}')
    unknown = sorted(set(arch) - set(_FAN_ARGS))
    if unknown:
        raise ValueError(f'arch dict has unknown keys {unknown}; allowed: {list(_FAN_ARGS)}')
    missing = [k for k in ('embed_dim', 'depth', 'num_heads') if k not in arch]
    if missing:
        raise ValueError(f'arch dict needs {missing}')
    args = dict(arch)
    if hybrid:
        args.setdefault('hybrid_depths', (3, 3))
    elif args.get('hybrid_depths') is not None:
        raise ValueError('FANViT arch must not set hybrid_depths (use FANHybrid)')
    return FAN(**args, **kwargs), f'custom FAN {arch}'


class _FANDense(DenseBackbone):
    """Shared FAN plumbing: trunk construction and pruning, checkpoint mapping, frozen stages.

    Subclasses call ``_setup_taps`` once they know which trunk features they read.
    """

    def __init__(self, arch, archs: Dict[str, str], hybrid: bool, drop_path_rate: float, drop_rate: float,
                 attn_drop_rate: float, frozen_stages: int, norm_eval: bool, with_cp: bool, init_cfg,
                 compile_blocks: Union[bool, dict] = False):
        super().__init__(frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp, init_cfg=init_cfg,
                         compile_blocks=compile_blocks)
        self.trunk, self.variant_name = _build_trunk(
            arch, archs, hybrid, drop_path_rate=drop_path_rate, drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate)
        self.depth = len(self.trunk.blocks)
        self.num_token_blocks = self.depth + len(self.trunk.cls_attn_blocks)
        self.embed_dim = self.trunk.embed_dim
        if not -1 <= frozen_stages <= self.depth + 1:
            raise ValueError(f'frozen_stages={frozen_stages} must be in [-1, {self.depth + 1}] '
                             f'({self.depth} FAN blocks, then class attention)')
        self.trunk.set_grad_checkpointing(with_cp)
        self.token_indices: List[int] = []

    def absolute_index(self, index: int) -> int:
        """Index over FAN blocks then class-attention blocks, negatives counted from the end."""
        n = self.num_token_blocks
        if not isinstance(index, int) or not -n <= index < n:
            raise ValueError(f'block index {index!r} out of range: {self.variant_name} has {self.depth} FAN '
                             f'blocks and {n - self.depth} class-attention blocks (indices -{n}..{n - 1})')
        return index % n

    def _setup_taps(self, token_indices: Sequence[int]) -> None:
        """Remember the absolute trunk indices to read and drop everything they do not need."""
        self.token_indices = sorted({self.absolute_index(i) for i in token_indices})
        before = {TRUNK + k for k in self.trunk.state_dict()}
        self.prune_trunk(self.token_indices or [0])
        if not self.token_indices:  # ConvNeXt stage maps only: no FAN block is needed either
            self.trunk.blocks = nn.ModuleList()
            self.trunk.pos_embed = None
        elif len(self.trunk.cls_attn_blocks):
            # the maps are patch tokens, which never read the class token: its path (class attention's
            # q / k / v / proj, the MLP, gamma2) would cost two token-wide linears per block for nothing
            self.trunk.prune_class_token()
        self._pruned_keys = tuple(sorted(before - {TRUNK + k for k in self.trunk.state_dict()}))
        self._freeze_stages()

    def _features(self, x: torch.Tensor, stem_indices: Sequence[int] = ()) -> Dict:
        """{('stem', i) or absolute block index: NCHW map}."""
        stem_indices = list(stem_indices)
        if not self.token_indices:
            _, _, stages = self.trunk.patch_embed(x, return_stages=True)
            return {('stem', i): stages[i] for i in stem_indices}
        feats = self.trunk.forward_intermediates(x, indices=self.token_indices, stem_indices=stem_indices,
                                                 intermediates_only=True, stop_early=True)
        keys = [('stem', i) for i in stem_indices] + list(self.token_indices)
        return dict(zip(keys, feats))

    # ---- DenseBackbone hooks ---------------------------------------------------------------
    def convert_official(self, state_dict):
        dense = {k: v for k, v in state_dict.items() if k.startswith(DENSE_ONLY_KEYS)}
        out = {TRUNK + k: v for k, v in checkpoint_filter_fn(state_dict, self.trunk).items()}
        out.update(dense)  # the wrapper keeps NVlabs' name for its own dense layers
        return out

    def unused_prefixes(self):
        own = set(self.state_dict())
        dense = tuple(p for p in DENSE_ONLY_KEYS if not any(k.startswith(p) for k in own))
        return tuple(super().unused_prefixes()) + dense

    def frozen_modules(self, frozen_stages: int):
        """-1: nothing; 0: the stem (ConvPatchEmbed, or ConvNeXt stages + proj) and the positional encoding;
        k >= 1: also FAN blocks 0..k-1; depth + 1: also the class token and the class-attention blocks."""
        if frozen_stages < 0:
            return []
        t = self.trunk
        mods = [t.patch_embed] + ([t.pos_embed] if t.pos_embed is not None else [])
        mods += list(t.blocks[:frozen_stages])
        if frozen_stages > self.depth:
            mods += list(t.cls_attn_blocks) + ([t.cls_token] if t.cls_token is not None else [])
        return mods


@register_model
class FANHybrid(_FANDense):
    """FAN-Hybrid backbone: ConvNeXt stages + FAN blocks, the four maps the NVlabs dense models return.

    Outputs (index: channels @ stride), C = 192 / 384 / 448 / 480 for tiny / small / base / large:

    0. ConvNeXt stage 0: 128 @ 4
    1. ConvNeXt stage 1: 256 @ 8
    2. tokens after FAN block ``block_index``: C @ 16
    3. patch tokens after the class-attention blocks: C @ 16; with ``feat_downsample=True`` they go through
       ``learnable_downsample`` (conv 3x3 stride 2, C -> ``downsample_channels``, not pretrained): 768 @ 32.

    ``feat_downsample=True`` is the NVlabs detection backbone (strides 4/8/16/32, for FPN);
    ``feat_downsample=False`` the NVlabs segmentation backbone (4/8/16/16, for SegFormer-style heads).
    Neither has per-output norms, and by default neither has them here (``out_norm=False``).

    ``out_norm=True`` puts a LayerNorm2d on each output, as mmdet's Swin and mmpretrain's ConvNeXt do. The
    ConvNeXt stage maps and the FAN tokens of output 2 are residual streams with no norm of their own; trained
    from scratch, their scale grows with the weights and the RoI classifier behind FPN diverges (see
    docs/from_scratch.md). ImageNet-initialised training does not need it; the from-scratch toy configs use it.

    Args:
        arch: 'tiny' | 'small' | 'base' | 'large' (or the timm name), or a dict of ``FAN`` arguments
            (``embed_dim``, ``depth``, ``num_heads`` required; ``hybrid_depths`` defaults to (3, 3)).
        out_indices: which of the four outputs to return, in this order.
        feat_downsample: put the stride-2 ``learnable_downsample`` on output 3 (detection layout).
        downsample_channels: output channels of ``learnable_downsample``.
        block_index: FAN block of output 2 (default: the NVlabs choice, the last block; 18 for large).
        drop_path_rate: stochastic depth, the same in every FAN block (as in the official models).
        drop_rate: dropout inside the blocks.
        attn_drop_rate: attention dropout.
        frozen_stages: see ``frozen_modules`` (-1: train everything).
        norm_eval: keep BatchNorm in eval mode while training.
        with_cp: activation checkpointing in the ConvNeXt, FAN and class-attention blocks.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='fan_hybrid_small.pth.tar')``.
        compile_blocks: ``torch.compile`` each ConvNeXt, FAN and class-attention block (True or a dict of
            options; see ``DenseBackbone``). Faster on GPU after a few seconds of compiling.
        out_norm: LayerNorm2d on each returned map (new weights, not in ImageNet checkpoints).
    """

    def __init__(self, arch: Union[str, dict] = 'small', out_indices: Sequence[int] = (0, 1, 2, 3),
                 feat_downsample: bool = True, downsample_channels: int = 768,
                 block_index: Optional[int] = None, drop_path_rate: float = 0., drop_rate: float = 0.,
                 attn_drop_rate: float = 0., frozen_stages: int = -1, norm_eval: bool = False,
                 with_cp: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 compile_blocks: Union[bool, dict] = False, out_norm: bool = False):
        super().__init__(arch, HYBRID_ARCHS, True, drop_path_rate, drop_rate, attn_drop_rate, frozen_stages,
                         norm_eval, with_cp, init_cfg, compile_blocks)
        self.out_indices = tuple(out_indices)
        if not self.out_indices or any(i not in (0, 1, 2, 3) for i in self.out_indices):
            raise ValueError(f'FANHybrid out_indices={out_indices}: each must be in 0..3')
        if block_index is None:
            block_index = HYBRID_BLOCK_INDEX.get(self.variant_name, self.depth - 1)
        self.block_index = self.absolute_index(block_index)
        if self.block_index >= self.depth:
            raise ValueError(f'block_index={block_index} must name a FAN block (0..{self.depth - 1})')
        self.feat_downsample = feat_downsample
        taps = ([self.block_index] if 2 in self.out_indices else []) + ([-1] if 3 in self.out_indices else [])
        self._setup_taps(taps)
        self._stem_indices = [i for i in (0, 1) if i in self.out_indices]
        if feat_downsample:
            self.learnable_downsample = nn.Conv2d(self.embed_dim, downsample_channels, 3, stride=2, padding=1)
        stem_dims = self.trunk.patch_embed.backbone.dims
        last = (downsample_channels, 32) if feat_downsample else (self.embed_dim, 16)
        table = [(stem_dims[0], 4), (stem_dims[1], 8), (self.embed_dim, 16), last]
        self.out_channels = [table[i][0] for i in self.out_indices]
        self.out_strides = [table[i][1] for i in self.out_indices]
        if out_norm:
            self.out_norms = nn.ModuleList(LayerNorm2d(c, eps=1e-6) for c in self.out_channels)

    def new_prefixes(self):
        return (('learnable_downsample.',) if self.feat_downsample else ()) + ('out_norms.',)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self._features(x, self._stem_indices)
        maps = {i: feats[('stem', i)] for i in self._stem_indices}
        if 2 in self.out_indices:
            maps[2] = feats[self.block_index]
        if 3 in self.out_indices:
            last = feats[self.num_token_blocks - 1]
            maps[3] = self.learnable_downsample(last) if self.feat_downsample else last
        outs = [maps[i] for i in self.out_indices]
        if hasattr(self, 'out_norms'):
            # timm's LayerNorm2d returns a permuted (channels-last strided) view; the necks and heads get
            # contiguous maps, as from the backbone without output norms
            outs = [norm(m).contiguous() for norm, m in zip(self.out_norms, outs)]
        return tuple(outs)


@register_model
class FANViT(_FANDense):
    """FAN-ViT backbone: a plain stride-16 trunk, read as a 4-level pyramid or as same-scale maps.

    ``mode='pyramid'`` (Mask R-CNN / FPN, UPerNet): ViTDet's simple feature pyramid (``SimplePyramid``) turns
    the map of ``block_indices`` (default: the class-attention output, the last map the NVlabs dense FAN
    returns) into strides 4 / 8 / 16 / 32 with C/4, C/2, C, C channels, each LayerNorm-ed (``out_norm``).
    Chosen over LV-ViT's deconvolution side layers because (a) ViTDet showed that a pyramid built from the last
    map of a plain ViT alone matches hierarchical backbones in Mask R-CNN, (b) it yields the 1/32 level FPN
    and Mask R-CNN expect (LV-ViT's side layers stop at 1/16), (c) it adds few parameters. Four
    ``block_indices`` give each level its own tap instead (BEiT / LV-ViT style).

    ``mode='single_scale'`` (SETR-PUP / MLA heads): the maps after ``block_indices`` (default: NVlabs' choice
    for fan_small_12_p16_224 -- blocks 4, 7, 11 and the class-attention output -- at the same relative depths
    for base / large), all C @ 16, LayerNorm-ed only if ``out_norm``.

    Block indices count FAN blocks, then class-attention blocks (-1: the last class-attention block).
    C = 192 / 384 / 448 / 480 for tiny / small / base / large. Inputs should be multiples of 16 (32 for the
    pyramid's 1/32 level).

    Args:
        arch: 'tiny' | 'small' | 'base' | 'large' (or the timm name), or a dict of ``FAN`` arguments
            (``embed_dim``, ``depth``, ``num_heads`` required).
        mode: 'pyramid' or 'single_scale'.
        block_indices: trunk taps (see above).
        out_indices: which outputs to return (default: all).
        out_norm: LayerNorm2d per output (default: True for 'pyramid', False for 'single_scale').
        drop_path_rate: stochastic depth, the same in every FAN block (as in the official models).
        drop_rate: dropout inside the blocks.
        attn_drop_rate: attention dropout.
        frozen_stages: see ``frozen_modules`` (-1: train everything).
        norm_eval: keep BatchNorm in eval mode while training.
        with_cp: activation checkpointing in the FAN and class-attention blocks.
        init_cfg: e.g. ``dict(type='Pretrained', checkpoint='fan_vit_small.pth.tar')``.
        compile_blocks: ``torch.compile`` each FAN and class-attention block (True or a dict of options;
            see ``DenseBackbone``).
    """

    def __init__(self, arch: Union[str, dict] = 'small', mode: str = 'pyramid',
                 block_indices: Optional[Sequence[int]] = None, out_indices: Optional[Sequence[int]] = None,
                 out_norm: Optional[bool] = None, drop_path_rate: float = 0., drop_rate: float = 0.,
                 attn_drop_rate: float = 0., frozen_stages: int = -1, norm_eval: bool = False,
                 with_cp: bool = False, init_cfg: Optional[Union[dict, List[dict]]] = None,
                 compile_blocks: Union[bool, dict] = False):
        super().__init__(arch, VIT_ARCHS, False, drop_path_rate, drop_rate, attn_drop_rate, frozen_stages,
                         norm_eval, with_cp, init_cfg, compile_blocks)
        if mode not in ('pyramid', 'single_scale'):
            raise ValueError(f"FANViT mode={mode!r}: use 'pyramid' or 'single_scale'")
        self.mode = mode
        if block_indices is None:
            if mode == 'pyramid':
                block_indices = (-1,)
            else:
                d = self.depth
                block_indices = VIT_SINGLE_SCALE_INDICES.get(d, (d // 3, 2 * d // 3, d - 1, -1))
        self.block_indices = [self.absolute_index(i) for i in block_indices]
        if mode == 'pyramid' and len(self.block_indices) not in (1, 4):
            raise ValueError(f'FANViT pyramid takes 1 or 4 block_indices, got {list(block_indices)}')
        self._setup_taps(self.block_indices)
        out_norm = (mode == 'pyramid') if out_norm is None else out_norm
        C = self.embed_dim
        if mode == 'pyramid':
            self.pyramid = SimplePyramid(C, scales=(4, 2, 1, 0.5), out_norm=out_norm)
            channels, strides = self.pyramid.out_channels, [4, 8, 16, 32]
        else:
            channels, strides = [C] * len(self.block_indices), [16] * len(self.block_indices)
            if out_norm:
                self.out_norms = nn.ModuleList(LayerNorm2d(C, eps=1e-6) for _ in self.block_indices)
        self.out_indices = tuple(range(len(channels)) if out_indices is None else out_indices)
        if not self.out_indices or any(not 0 <= i < len(channels) for i in self.out_indices):
            raise ValueError(f'FANViT out_indices={out_indices}: each must be in 0..{len(channels) - 1}')
        self.out_channels = [channels[i] for i in self.out_indices]
        self.out_strides = [strides[i] for i in self.out_indices]

    def new_prefixes(self):
        return ('pyramid.', 'out_norms.')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self._features(x)
        maps = [feats[i] for i in self.block_indices]
        if self.mode == 'pyramid':
            outs = self.pyramid(maps)
        elif hasattr(self, 'out_norms'):
            outs = [norm(m).contiguous() for norm, m in zip(self.out_norms, maps)]
        else:
            outs = maps
        return tuple(outs[i] for i in self.out_indices)
