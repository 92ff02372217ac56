"""LV-ViT: Vision Transformers trained with Token Labeling.

Paper: `All Tokens Matter: Token Labeling for Training Better Vision Transformers`
(Jiang et al., NeurIPS 2021) - https://arxiv.org/abs/2104.10858
Official code and weights: https://github.com/zihangJiang/TokenLabeling (``tlt/models``).

A re-implementation of the official classification model: the released files load unchanged
(same state_dict keys and shapes) and give the same outputs (checked against goldens of the
official code). What it adds or changes:

* The position embedding is resized bicubically (cls entry kept, no antialiasing, as the
  official fine-tuning loader) whenever the token grid differs from the one it was built
  for: when a checkpoint of another resolution is loaded and at run time for any input size
  (the official classifier fails on other sizes; its segmentation copy resizes at run time).
* MixToken draws its box from torch's RNG (the official code uses ``np.random`` and the
  removed ``np.int``); see ``fan_mm.models.token_labeling``.
* ``forward_intermediates`` returns the blocks' outputs for dense backbones and timm's
  feature wrappers; ``timm.create_model(name, pretrained=True,
  pretrained_cfg_overlay=dict(file=PATH))`` loads the official files with plain-words errors.
"""
import math
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import nn
from timm.layers import Attention, Mlp, resample_abs_pos_embed, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from ..layers import DropPath
from .checkpoint_utils import flat_state_dict, source_of
from .pretrained import build_model
from .token_labeling import sample_token_box, swap_box_with_flipped

__all__ = ['LVVisionTransformer', 'ConvStem', 'LVViTBlock', 'checkpoint_filter_fn']


class ConvStem(nn.Module):
    """The official 4-layer convolutional patch embedding (``PatchEmbed4_2``).

    conv7x7/2 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv with
    kernel = stride = patch_size / 2 (with bias, no norm). Convs before ``proj`` have no
    bias. Output ``[B, D, h, w]`` with ``h = ceil(H / 2) // (patch_size / 2)``; any input size.

    Args:
        in_chans: input channels.
        embed_dim: token dimension D.
        stem_chs: channels of the three stem convs (64; 128 for LV-ViT-L).
        patch_size: overall stride (16).
    """

    def __init__(self, in_chans: int = 3, embed_dim: int = 384, stem_chs: int = 64,
                 patch_size: int = 16):
        super().__init__()
        if patch_size % 2:
            raise ValueError(f'patch_size must be even, got {patch_size}')
        self.patch_size = patch_size
        self.conv1 = nn.Conv2d(in_chans, stem_chs, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        self.conv2 = nn.Conv2d(stem_chs, stem_chs, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_chs)
        self.conv3 = nn.Conv2d(stem_chs, stem_chs, 3, stride=1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(stem_chs)
        self.proj = nn.Conv2d(stem_chs, embed_dim, patch_size // 2, stride=patch_size // 2)
        self.relu = nn.ReLU(inplace=True)

    def feat_size(self, img_size: Tuple[int, int]) -> Tuple[int, int]:
        """Token grid for an input of ``img_size``."""
        return tuple(((s + 1) // 2) // (self.patch_size // 2) for s in img_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        return self.proj(x)


class LVViTBlock(nn.Module):
    """Pre-norm transformer block with residual scaling.

    ``x = x + DropPath(Attn(LN(x))) / skip_lam; x = x + DropPath(MLP(LN(x))) / skip_lam``.
    Only the branch is scaled (no learnable LayerScale). Attention is timm's (fused SDPA
    where available; the official code multiplies q by the scale before q @ k^T, which
    differs only by float rounding).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3., qkv_bias: bool = False,
                 proj_drop: float = 0., attn_drop: float = 0., drop_path: float = 0.,
                 skip_lam: float = 1.0, act_layer: Callable = nn.GELU,
                 norm_layer: Callable = nn.LayerNorm):
        super().__init__()
        self.skip_lam = skip_lam
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias,
                              attn_drop=attn_drop, proj_drop=proj_drop)
        # a DropPath even at rate 0 (the first block of the ramp), so that every block compiles to one graph
        # (the rate is a tensor the graph reads, see fan_mm.layers.DropPath); at rate 0 it returns its input
        self.drop_path = DropPath(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer,
                       drop=proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x))) / self.skip_lam
        x = x + self.drop_path(self.mlp(self.norm2(x))) / self.skip_lam
        return x


class LVVisionTransformer(nn.Module):
    """LV-ViT: conv stem, cls token, learned position embedding, scaled-residual blocks,
    a class head on the cls token and an auxiliary head on every patch token.

    Outputs:
        * eval (and training with ``return_dense=False``): ``head(cls) + aux_weight *
          max over tokens of aux_head(tokens)``, the official evaluation output
          (``aux_weight`` 0.5); with ``num_classes=0`` the cls-token features.
        * training with ``return_dense=True`` (``forward_train``): ``(cls_logits [B, K],
          aux_logits [B, N, K], box)`` for ``TokenLabelCrossEntropy``; MixToken (when
          enabled) mixes the stem output with the batch-flipped partner inside ``box``
          (rows r1:r2, cols c1:c2 of the token grid) and swaps the aux logits back.

    Args:
        img_size: input size the position embedding is built for.
        patch_size: token stride (16).
        in_chans: input channels.
        num_classes: classes of ``head`` and ``aux_head`` (0: no heads).
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer sizes (official:
            qkv without bias, mlp_ratio 3).
        stem_chs: conv stem channels (64; 128 for L).
        skip_lam: residual branch divisor (T 1, S/M 2, L 3).
        drop_rate: dropout after the position embedding, in attention proj and the MLP.
        attn_drop_rate: attention dropout.
        drop_path_rate: stochastic depth, linear from 0 over the blocks.
        aux_weight: weight of the max-pooled aux logits in the eval output.
        return_dense: training forward returns ``(cls, aux, box)``.
        mix_token: MixToken in the training forward (requires ``return_dense``).
        mix_token_beta: Beta(beta, beta) parameter of the MixToken ratio.
        norm_layer, act_layer: LayerNorm (eps 1e-5) and exact GELU by default.
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            embed_dim: int = 384,
            depth: int = 16,
            num_heads: int = 6,
            mlp_ratio: float = 3.,
            qkv_bias: bool = False,
            stem_chs: int = 64,
            skip_lam: float = 1.0,
            drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            aux_weight: float = 0.5,
            return_dense: bool = True,
            mix_token: bool = True,
            mix_token_beta: float = 1.0,
            norm_layer: Optional[Callable] = None,
            act_layer: Optional[Callable] = None,
            global_pool: str = 'token',
    ):
        super().__init__()
        if mix_token and not return_dense:
            raise ValueError('mix_token=True needs return_dense=True: the mixed tokens are '
                             'only un-mixed in the dense (aux) output')
        if global_pool != 'token':
            raise ValueError(f"LV-ViT classifies from the cls token; global_pool={global_pool!r} "
                             "is not supported")
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-5)
        act_layer = act_layer or nn.GELU
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.aux_weight = aux_weight
        self.return_dense = return_dense
        self.mix_token = mix_token
        self.mix_token_beta = mix_token_beta
        self.grad_checkpointing = False

        self.patch_embed = ConvStem(in_chans, embed_dim, stem_chs, patch_size)
        self.img_size = img_size
        self.grid_size = self.patch_embed.feat_size(img_size)
        num_patches = self.grid_size[0] * self.grid_size[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(p=drop_rate)

        dpr = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()
        self.blocks = nn.ModuleList([
            LVViTBlock(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                       proj_drop=drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i],
                       skip_lam=skip_lam, act_layer=act_layer, norm_layer=norm_layer)
            for i in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f'blocks.{i}')
                             for i in range(depth)]
        self.init_weights()

    def init_weights(self):
        """Official init: trunc-normal(.02) for pos_embed, cls_token and Linear weights,
        zero Linear biases, unit LayerNorms; convs and BN keep PyTorch defaults. Skipped on
        the meta device (shape-only builds, where it is slow and meaningless)."""
        if self.pos_embed.is_meta:
            return
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        self.apply(_init_weights)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(stem=r'^cls_token|pos_embed|patch_embed',
                    blocks=[(r'^blocks\.(\d+)', None), (r'^norm', (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        """New ``head`` and ``aux_head`` for ``num_classes`` (0: none)."""
        if global_pool not in (None, 'token'):
            raise ValueError(f'global_pool={global_pool!r} is not supported (cls token only)')
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        for m in (self.head, self.aux_head):
            m.apply(_init_weights)

    # ---------------------------------------------------------------------------------
    def pos_embed_for(self, grid_size: Tuple[int, int]) -> torch.Tensor:
        """Position embedding (cls entry first) for a token grid, resized bicubically if needed."""
        if tuple(grid_size) == tuple(self.grid_size):
            return self.pos_embed
        return resample_abs_pos_embed(self.pos_embed, new_size=list(grid_size),
                                      old_size=list(self.grid_size), num_prefix_tokens=1,
                                      interpolation='bicubic', antialias=False)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Stem map ``[B, D, h, w]`` -> ``[B, 1 + h*w, D]`` with cls token and position embedding."""
        B, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)
        return self.pos_drop(x + self.pos_embed_for((h, w)))

    def _run_block(self, blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and x.requires_grad and not torch.jit.is_scripting():
            return torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
        return blk(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens ``[B, 1 + N, D]`` (no MixToken)."""
        x = self._tokens(self.patch_embed(x))
        for blk in self.blocks:
            x = self._run_block(blk, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Official eval output ``head(cls) + aux_weight * max_tokens(aux_head(tokens))``."""
        if pre_logits or self.num_classes == 0:
            return x[:, 0]
        out = self.head(x[:, 0])
        if self.aux_weight:
            out = out + self.aux_weight * self.aux_head(x[:, 1:]).max(1)[0]
        return out

    def forward_train(self, x: torch.Tensor):
        """``(cls_logits, aux_logits, box)``: the official training output (see class doc)."""
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        if self.mix_token and self.training:
            box = sample_token_box((h, w), self.mix_token_beta)
            x = swap_box_with_flipped(x, box, dims=(2, 3))
        else:
            box = (0, 0, 0, 0)
        x = self._tokens(x)
        for blk in self.blocks:
            x = self._run_block(blk, x)
        x = self.norm(x)
        x_cls = self.head(x[:, 0])
        x_aux = self.aux_head(x[:, 1:])
        if box != (0, 0, 0, 0):
            B, N, K = x_aux.shape
            x_aux = swap_box_with_flipped(x_aux.reshape(B, h, w, K), box, dims=(1, 2))
            x_aux = x_aux.reshape(B, N, K)
        return x_cls, x_aux, box

    def forward(self, x: torch.Tensor):
        if self.training and self.return_dense and self.num_classes > 0:
            return self.forward_train(x)
        return self.forward_head(self.forward_features(x))

    # ---------------------------------------------------------------------------------
    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ):
        """Outputs of the blocks in ``indices`` (last n if int, all if None).

        ``output_fmt='NCHW'``: patch tokens as maps ``[B, D, h, w]`` (stride 16); ``'NLC'``:
        ``[B, N, D]``. ``return_prefix_tokens`` pairs each with its cls token ``[B, 1, D]``.
        ``norm`` applies the final norm to every intermediate.
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        x = self.patch_embed(x)
        B, _, h, w = x.shape
        x = self._tokens(x)
        blocks = self.blocks[:max_index + 1] if stop_early else self.blocks
        intermediates = []
        for i, blk in enumerate(blocks):
            x = self._run_block(blk, x)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm else x)
        prefix = [y[:, :1] for y in intermediates]
        intermediates = [y[:, 1:] for y in intermediates]
        if output_fmt == 'NCHW':
            intermediates = [y.reshape(B, h, w, -1).permute(0, 3, 1, 2).contiguous()
                             for y in intermediates]
        if return_prefix_tokens:
            intermediates = list(zip(intermediates, prefix))
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True):
        """Drop the blocks after the last of ``indices`` (and the heads / final norm)."""
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take_indices


def _init_weights(m: nn.Module):
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def checkpoint_filter_fn(state_dict, model: LVVisionTransformer) -> Dict[str, torch.Tensor]:
    """Official LV-ViT checkpoint -> this model's naming: a pure remap (the loader's
    ``checkpoint_utils.check_state_dict`` checks it).

    Unwraps ``state_dict_ema`` / ``state_dict`` / ``model`` containers and a ``module.``
    prefix; resizes ``pos_embed`` bicubically (cls entry kept, no antialias, as the official
    fine-tuning loader) to the model's grid, for checkpoints at 384 / 448 / 512 or a model
    built for another size.
    """
    state_dict = flat_state_dict(state_dict, source_of(state_dict))
    pos = state_dict.get('pos_embed')
    if pos is not None and pos.ndim == 3 and pos.shape[-1] == model.pos_embed.shape[-1] \
            and pos.shape[1] != model.pos_embed.shape[1]:
        side = math.isqrt(pos.shape[1] - 1)
        if side * side == pos.shape[1] - 1:  # official grids are square
            state_dict['pos_embed'] = resample_abs_pos_embed(
                pos, new_size=list(model.grid_size), old_size=[side, side], num_prefix_tokens=1,
                interpolation='bicubic', antialias=False)
    return state_dict


def _create_lvvit(variant: str, pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    return build_model(LVVisionTransformer, variant, pretrained,
                       pretrained_filter_fn=checkpoint_filter_fn,
                       feature_cfg=dict(out_indices=3), **kwargs)


_RELEASE = 'https://github.com/zihangJiang/TokenLabeling/releases/download/'


def _cfg(file: str = '', **kwargs):
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': .9, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225),
        'first_conv': 'patch_embed.conv1', 'classifier': ('head', 'aux_head'),
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2104.10858',
        'origin_url': 'https://github.com/zihangJiang/TokenLabeling',
        'notes': (f'Official weights (download them yourself): {_RELEASE}{file}',) if file
        else ('No official weights at this resolution.',),
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'lvvit_t.tl_in1k': _cfg('v0.2.0/lvvit_t.pth'),
    'lvvit_s.tl_in1k': _cfg('1.0/lvvit_s-26M-224-83.3.pth.tar'),
    'lvvit_m.tl_in1k': _cfg('1.0/lvvit_m-56M-224-84.0.pth.tar', crop_pct=1.0),
    'lvvit_l.untrained': _cfg(crop_pct=1.0),
    'lvvit_s_384.tl_in1k': _cfg('1.0/lvvit_s-26M-384-84.4.pth.tar', input_size=(3, 384, 384)),
    'lvvit_m_384.tl_in1k': _cfg('1.0/lvvit_m-56M-384-85.4.pth.tar', input_size=(3, 384, 384),
                                crop_pct=1.0),
    'lvvit_m_448.tl_in1k': _cfg('1.0/lvvit_m-56M-448-85.5.pth.tar', input_size=(3, 448, 448),
                                crop_pct=1.0),
    'lvvit_l_448.tl_in1k': _cfg('1.0/lvvit_l-150M-448-86.2.pth.tar', input_size=(3, 448, 448),
                                crop_pct=1.0),
    'lvvit_l_512.tl_in1k': _cfg('1.0/lvvit_l-150M-512-86.4.pth.tar', input_size=(3, 512, 512),
                                crop_pct=1.0),
})

_T = dict(embed_dim=240, depth=12, num_heads=4, mlp_ratio=3., skip_lam=1.0, stem_chs=64)
_S = dict(embed_dim=384, depth=16, num_heads=6, mlp_ratio=3., skip_lam=2.0, stem_chs=64)
_M = dict(embed_dim=512, depth=20, num_heads=8, mlp_ratio=3., skip_lam=2.0, stem_chs=64)
_L = dict(embed_dim=768, depth=24, num_heads=12, mlp_ratio=3., skip_lam=3.0, stem_chs=128)


@register_model
def lvvit_t(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-T @ 224 (8.5M)."""
    return _create_lvvit('lvvit_t', pretrained, **dict(_T, **kwargs))


@register_model
def lvvit_s(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-S @ 224 (26.2M)."""
    return _create_lvvit('lvvit_s', pretrained, **dict(_S, **kwargs))


@register_model
def lvvit_m(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-M @ 224 (55.8M)."""
    return _create_lvvit('lvvit_m', pretrained, **dict(_M, **kwargs))


@register_model
def lvvit_l(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-L @ 224 (150.0M; the released L weights are at 448 / 512)."""
    return _create_lvvit('lvvit_l', pretrained, **dict(_L, **kwargs))


@register_model
def lvvit_s_384(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-S @ 384."""
    return _create_lvvit('lvvit_s_384', pretrained, **dict(_S, **kwargs))


@register_model
def lvvit_m_384(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-M @ 384."""
    return _create_lvvit('lvvit_m_384', pretrained, **dict(_M, **kwargs))


@register_model
def lvvit_m_448(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-M @ 448."""
    return _create_lvvit('lvvit_m_448', pretrained, **dict(_M, **kwargs))


@register_model
def lvvit_l_448(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-L @ 448."""
    return _create_lvvit('lvvit_l_448', pretrained, **dict(_L, **kwargs))


@register_model
def lvvit_l_512(pretrained: bool = False, **kwargs) -> LVVisionTransformer:
    """LV-ViT-L @ 512."""
    return _create_lvvit('lvvit_l_512', pretrained, **dict(_L, **kwargs))
