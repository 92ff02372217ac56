"""``LVViT``: the LV-ViT trunk as an mmdet / mmseg backbone (official segmentation design).

The official ADE20K UperNet models (zihangJiang/TokenLabeling ``seg/mmseg/models/backbones/
vit.py``, ``use_side_layer=True``) tap four blocks of the plain stride-16 trunk and turn them
into a pyramid with "side layers": a 4x4/4 transposed conv (stride 4), a 2x2/2 transposed
conv (stride 8), a 1x1 conv (stride 16) and a 1x1 conv to ``out_channels`` (2048; still
stride 16), each followed by norm + ReLU (the first two by a further 1x1 conv + norm + ReLU).

This wrapper runs fan_mm's classification model (``fan_mm.models.lvvit``) so that the
ImageNet checkpoints load as they are. Where it departs from the official segmentation copy
(all deliberate, so that the pretrained trunk computes what it was trained to compute):

* LayerNorm eps 1e-5 and ``(q * scale) @ k^T`` as in classification (the segmentation copy
  used eps 1e-6 and ``(q @ k^T) * scale``);
* ``drop_path_rate`` is stochastic depth (the segmentation copy passed it as MLP dropout);
* ``skip_lam`` is the classification one for every size (the official L config left it at
  1.0 while loading weights trained with 3.0);
* the position embedding stays at the checkpoint's grid (``img_size``, 224) and is resized
  bicubically to the input's grid on every forward (official: resized to ``img_size`` 512
  when loading and again at run time; pass ``img_size=512`` to do the same).

No final norm, no cls token in the outputs (as official).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

import timm

from ...registry import register_model
from ..lvvit import LVVisionTransformer, checkpoint_filter_fn
from .base import TRUNK, DenseBackbone, resolve_arch

# depth, width, heads and scaling of the classification models; taps: every third block
# ending at the last (the official S / M / L segmentation configs; T by the same rule)
ARCHS: Dict[str, dict] = {
    'tiny': dict(embed_dim=240, depth=12, num_heads=4, skip_lam=1.0, stem_chs=64,
              out_indices=(2, 5, 8, 11), variant='lvvit_t'),
    'small': dict(embed_dim=384, depth=16, num_heads=6, skip_lam=2.0, stem_chs=64,
              out_indices=(6, 9, 12, 15), variant='lvvit_s'),
    'medium': dict(embed_dim=512, depth=20, num_heads=8, skip_lam=2.0, stem_chs=64,
              out_indices=(10, 13, 16, 19), variant='lvvit_m'),
    'large': dict(embed_dim=768, depth=24, num_heads=12, skip_lam=3.0, stem_chs=128,
              out_indices=(14, 17, 20, 23), variant='lvvit_l'),
}


def _parse_arch(arch: str):
    """``'small'`` / ``'lvvit_s'`` -> ``('small', None)``; ``'lvvit_m_448'`` -> ``('medium', 448)``."""
    names = {size: cfg['variant'] for size, cfg in ARCHS.items()}
    name = resolve_arch('LVViT', arch, names, timm.list_models('lvvit_*'))
    base, _, res = name.rpartition('_')
    if not res.isdigit():
        base, res = name, ''
    size = next(s for s, n in names.items() if n == base)
    return size, int(res) if res else None


def _norm(cfg: dict, channels: int) -> nn.Module:
    """mmcv's ``build_norm_layer`` (BN, SyncBN, GN, ...); BN / SyncBN also without mmcv."""
    try:
        from mmcv.cnn import build_norm_layer
    except ImportError:  # mmcv is only needed for the other norm types
        layers = {'BN': nn.BatchNorm2d, 'BN2d': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm}
        if cfg.get('type') not in layers:
            raise ImportError(f"norm_cfg type {cfg.get('type')!r} needs mmcv") from None
        norm = layers[cfg['type']](channels, **{k: v for k, v in cfg.items()
                                                 if k in ('eps', 'momentum')})
        for p in norm.parameters():
            p.requires_grad = cfg.get('requires_grad', True)
        return norm
    return build_norm_layer(cfg, channels)[1]


def _side_layer(in_channels: int, out_channels: int, up: int, norm_cfg: dict) -> nn.Sequential:
    """[transposed conv k=s=up, norm, ReLU,] 1x1 conv, norm, ReLU (official layer order)."""
    layers: List[nn.Module] = []
    if up > 1:
        layers += [nn.ConvTranspose2d(in_channels, in_channels, up, stride=up, bias=False),
                   _norm(norm_cfg, in_channels), nn.ReLU(inplace=True)]
    layers += [nn.Conv2d(in_channels, out_channels, 1, bias=False),
               _norm(norm_cfg, out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


@register_model
class LVViT(DenseBackbone):
    """LV-ViT backbone: four tapped blocks -> side layers at strides 4, 8, 16, 16.

    Outputs (``side_layers=True``, the official UperNet design): channels ``(D, D, D,
    out_channels)`` at strides ``(4, 8, 16, 16)``, D = 240 / 384 / 512 / 768 for T / S / M / L;
    UPerHead ``in_channels=[D, D, D, 2048]``. With ``side_layers=False``: the tapped blocks'
    patch tokens as maps, ``D`` channels each at stride 16 (SETR-style heads).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'medium'``, ``'large'``, a registered name (``'lvvit_s'``,
            ``'lvvit_m_448'``: sets ``img_size``) or a dict of ``LVVisionTransformer`` sizes
            (``embed_dim``, ``depth``, ``num_heads``, ``skip_lam``, ``stem_chs``).
        img_size: input size the position embedding is kept for (the checkpoint's, 224).
        out_indices: tapped blocks (default: the official ones of the arch).
        side_layers: build the pyramid (four taps needed).
        out_channels: channels of the last side layer (2048).
        norm_cfg: norm of the side layers (``SyncBN`` in the official configs).
        drop_rate, attn_drop_rate, drop_path_rate: trunk regularisation.
        frozen_stages: -1 none; 0 the stem, cls token and position embedding; k >= 1 also
            the blocks up to the k-th tapped one (side layers are never frozen).
        norm_eval: BatchNorm (stem and side layers) in eval mode while training.
        with_cp: activation checkpointing of the blocks.
        compile_blocks: ``torch.compile`` each trunk block (True or a dict of options; see
            ``DenseBackbone``).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` with an official ImageNet
            checkpoint (any resolution) or an mm-style file.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 img_size: int = 224,
                 out_indices: Optional[Sequence[int]] = None,
                 side_layers: bool = True,
                 out_channels: int = 2048,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 compile_blocks: Union[bool, dict] = False):
        super().__init__(frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg, compile_blocks=compile_blocks)
        if isinstance(arch, str):
            arch, size = _parse_arch(arch)
            img_size = size or img_size
            arch_cfg = dict(ARCHS[arch])
        else:
            arch_cfg = dict(arch)
        self.variant_name = arch_cfg.pop('variant', 'custom LV-ViT')
        default_indices = arch_cfg.pop('out_indices', None)
        out_indices = tuple(out_indices if out_indices is not None else default_indices or ())
        depth = arch_cfg['depth']
        if not out_indices or any(not 0 <= i < depth for i in out_indices):
            raise ValueError(f'LVViT: out_indices {out_indices} must be block indices in '
                             f'[0, {depth})')
        if side_layers and len(out_indices) != 4:
            raise ValueError(f'LVViT: the side-layer pyramid takes 4 tapped blocks, got '
                             f'out_indices={out_indices}')
        self.out_indices = out_indices
        self.trunk = LVVisionTransformer(
            img_size=img_size, num_classes=0, return_dense=False, mix_token=False,
            drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate,
            **arch_cfg)
        # what dense prediction does not use: no final norm (official), no blocks after the
        # last tap (they would get no gradient)
        self.prune_trunk(out_indices)
        if with_cp:
            self.trunk.set_grad_checkpointing(True)
        dim = arch_cfg['embed_dim']
        self.side_layers = side_layers
        if side_layers:
            self.side_layer1 = _side_layer(dim, dim, 4, norm_cfg)
            self.side_layer2 = _side_layer(dim, dim, 2, norm_cfg)
            self.side_layer3 = _side_layer(dim, dim, 1, norm_cfg)
            self.side_layer4 = _side_layer(dim, out_channels, 1, norm_cfg)
            self.out_channels = (dim, dim, dim, out_channels)
            self.out_strides = (4, 8, 16, 16)
        else:
            self.out_channels = (dim,) * len(out_indices)
            self.out_strides = (16,) * len(out_indices)

    # ---- DenseBackbone hooks ----------------------------------------------------------------
    def convert_official(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Official classification keys -> ``trunk.*`` (position embedding resized); the
        official segmentation file's ``side_layer*`` keys keep their names."""
        side = {k: v for k, v in state_dict.items() if k.startswith('side_layer')}
        trunk = checkpoint_filter_fn({k: v for k, v in state_dict.items() if k not in side},
                                     self.trunk)
        return {**{TRUNK + k: v for k, v in trunk.items()}, **side}

    def unused_prefixes(self) -> Sequence[str]:
        return tuple(super().unused_prefixes()) + (TRUNK + 'aux_head.',)

    def new_prefixes(self) -> Sequence[str]:
        return ('side_layer',)

    def frozen_modules(self, frozen_stages: int):
        if frozen_stages < 0:
            return []
        items = [self.trunk.patch_embed, self.trunk.cls_token, self.trunk.pos_embed]
        if frozen_stages >= 1:
            last = self.out_indices[min(frozen_stages, len(self.out_indices)) - 1]
            items += list(self.trunk.blocks[:last + 1])
        return items

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        feats = self.trunk.forward_intermediates(x, indices=list(self.out_indices),
                                                 output_fmt='NCHW', intermediates_only=True,
                                                 stop_early=True)
        if self.side_layers:
            sides = (self.side_layer1, self.side_layer2, self.side_layer3, self.side_layer4)
            feats = [side(f) for side, f in zip(sides, feats)]
        return tuple(feats)
