"""``FANSwin``: FAN-Swin as an mmdet / mmseg backbone, the way mmdet's ``SwinTransformer`` works.

Any input size (the patch embedding, the windows and the patch merging pad as mmdet's Swin
does), windows of 7 with shifts in every stage (``always_partition``; the classifier's last
stage at 224 is one unshifted window), each output stage normalised by its own LayerNorm
(``norm0`` ... ``norm3``, new layers, as mmdet's Swin), ``out_indices``, ``frozen_stages``,
``norm_eval``, ``with_cp``. The trunk is fan_mm's classification model
(``fan_mm.models.fan_swin``), so checkpoints trained with the official classification code
load with their own key names (under ``trunk.``).

The NVlabs segmentation copy (``FANSwinTransformer`` in ``segmentation/.../swin_utils.py``,
unused by any config) differs from the classification model (8 channel-processing heads in
every stage, a DWConv residual in the value MLP), so its weights do not fit the classification
layout; this wrapper follows the classification model, whose weights are what one pretrains.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn

from ...registry import register_model
from ..fan_swin import FANSwinTransformer, checkpoint_filter_fn
from .base import TRUNK, DenseBackbone, resolve_arch

ARCHS: Dict[str, dict] = {
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24),
                 variant='fan_swin_tiny_patch4_window7_224'),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24),
                  variant='fan_swin_small_patch4_window7_224'),
    'base': dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32),
                 variant='fan_swin_base_patch4_window7_224'),
    'large': dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48),
                  variant='fan_swin_large_patch4_window7_224'),
}


@register_model
class FANSwin(DenseBackbone):
    """FAN-Swin backbone: stage outputs at strides 4, 8, 16, 32, each LayerNorm-ed.

    Channels ``(C, 2C, 4C, 8C)`` with C = 96 (tiny, small), 128 (base), 192 (large), for the
    stages in ``out_indices``.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'`` (or the timm name,
            ``'fan_swin_tiny_patch4_window7_224'``) or a dict with ``embed_dim``,
            ``depths``, ``num_heads`` (and optionally ``mlp_types``).
        pretrain_img_size: size the trunk is built for (224; only the stored masks depend on it).
        window_size: attention window (7).
        mlp_ratio: MLP / value-MLP width ratio (4).
        out_indices: output stages.
        drop_rate, attn_drop_rate, drop_path_rate: trunk regularisation (stochastic depth
            linear over all blocks).
        frozen_stages: -1 none; 0 the patch embedding; k >= 1 also stages 0..k-1 (with their
            patch merging) and their output norms (mmdet's Swin semantics).
        norm_eval: BatchNorm (in the channel processing) in eval mode while training.
        with_cp: activation checkpointing of the blocks.
        compile_blocks: ``torch.compile`` each trunk block (True or a dict of options; see
            ``DenseBackbone``).
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` with an official-format
            classification checkpoint or an mm-style file.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 pretrain_img_size: int = 224,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.2,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 compile_blocks: Union[bool, dict] = False):
        super().__init__(frozen_stages=frozen_stages, norm_eval=norm_eval, with_cp=with_cp,
                         init_cfg=init_cfg, compile_blocks=compile_blocks)
        if isinstance(arch, str):
            name = resolve_arch('FANSwin', arch, {size: cfg['variant'] for size, cfg in ARCHS.items()})
            arch_cfg = dict(next(cfg for cfg in ARCHS.values() if cfg['variant'] == name))
        else:
            arch_cfg = dict(arch)
        self.variant_name = arch_cfg.pop('variant', 'custom FAN-Swin')
        num_stages = len(arch_cfg['depths'])
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i < num_stages for i in out_indices):
            raise ValueError(f'FANSwin: out_indices {out_indices} must be stage indices in '
                             f'[0, {num_stages})')
        self.out_indices = out_indices
        self.trunk = FANSwinTransformer(
            img_size=pretrain_img_size, num_classes=0, window_size=window_size,
            mlp_ratio=mlp_ratio, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate, always_partition=True, **arch_cfg)
        # parts that get no gradient in dense use: the final norm (each output has its own),
        # stages after the last output and the merging after it
        self.prune_trunk(out_indices)
        if with_cp:
            self.trunk.set_grad_checkpointing(True)
        embed_dim = arch_cfg['embed_dim']
        self.out_channels = tuple(embed_dim * 2 ** i for i in out_indices)
        self.out_strides = tuple(4 * 2 ** i for i in out_indices)
        for i, channels in zip(out_indices, self.out_channels):
            self.add_module(f'norm{i}', nn.LayerNorm(channels))

    # ---- DenseBackbone hooks ----------------------------------------------------------------
    def convert_official(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Classification keys -> ``trunk.*`` (buffers checked, masks dropped); output norms
        ``norm0`` ... (segmentation-copy naming) keep their names."""
        outs = {k: v for k, v in state_dict.items() if k[:4] == 'norm' and k[4:5].isdigit()}
        trunk = checkpoint_filter_fn({k: v for k, v in state_dict.items() if k not in outs},
                                     self.trunk)
        return {**{TRUNK + k: v for k, v in trunk.items()}, **outs}

    def new_prefixes(self) -> Sequence[str]:
        return tuple(f'norm{i}.' for i in self.out_indices)

    def frozen_modules(self, frozen_stages: int):
        if frozen_stages < 0:
            return []
        items = [self.trunk.patch_embed]
        for i in range(1, frozen_stages + 1):
            if i - 1 < len(self.trunk.layers):
                items.append(self.trunk.layers[i - 1])
            if (i - 1) in self.out_indices:
                items.append(getattr(self, f'norm{i - 1}'))
        return items

    # ---- forward ----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        feats = self.trunk.forward_intermediates(x, indices=list(self.out_indices),
                                                 output_fmt='NHWC', intermediates_only=True,
                                                 stop_early=True)
        return tuple(getattr(self, f'norm{i}')(f).permute(0, 3, 1, 2).contiguous()
                     for i, f in zip(self.out_indices, feats))
