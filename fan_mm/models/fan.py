""" FAN: Fully Attentional Networks (FAN-ViT and FAN-Hybrid)

Paper: `Understanding The Robustness in Vision Transformers` - https://arxiv.org/abs/2204.12451
    Zhou, Yu, Xie, Xiao, Anandkumar, Feng, Alvarez. ICML 2022.

Official code: https://github.com/NVlabs/FAN (``models/fan.py``, ``models/convnext_utils.py``), written for
timm 0.5.4; ImageNet weights from https://github.com/zhoudaquan/fully_attentional_network_ckpt (release v1.0.0).

This is a re-implementation for timm 1.0. It computes what the official models compute (checked against
goldens made with the official code: logits and every block output within 1e-4 in float32) and uses the
official state_dict names and shapes, so the released files load as they are:
``timm.create_model('fan_small_12_p4_hybrid', pretrained=True, pretrained_cfg_overlay=dict(file=PATH))``.

What it changes (none of it changes the function on standard NCHW-contiguous inputs):
* The hybrid ConvNeXt stem's ``LayerNorm2d`` quirk is made explicit. The official ``LayerNorm2d`` takes a
  ``torch.var_mean`` path with the *unbiased* (C - 1) variance whenever its input is not contiguous in the
  default memory format, and a standard (biased) LayerNorm otherwise. In the official forward that happens
  for every ConvNeXt block norm and the stage-1 downsample norm (they see convs fed by a permuted LayerNorm
  output, which keep channels-last strides), never for the stem norm. Here each norm has a fixed
  ``unbiased`` flag (stem: False, all others: True), so the result no longer depends on memory format.
  A standard LayerNorm everywhere moves the logits by about 1e-3.
* Token mixing and class attention use ``F.scaled_dot_product_attention`` (same function, fused kernel).
* Under autocast (bf16 / fp16) a few steps stay in the low-precision dtype where the official code would
  promote to float32 and cast straight back: ``DWConvMlp``'s LayerScale sum and the ConvNeXt norms that
  feed convs (their parameters are rounded to that dtype, as autocast rounds conv and linear weights).
  Float32 runs are unchanged.
* Blocks take ``H, W`` as arguments instead of attributes set by the caller before each call.
* Arguments that the official code stores but never uses (``sr_ratio``, ``sharpen_attn``, ``linear``,
  ``share_atten``, ``emlp``) are gone; ``Mlp.act`` (constructed, never called) is not built; the SE variant
  (``fan_small_12_p16_224_se_attn``, whose official forward is broken) and the unreleased Xlarge are not
  ported.
* ``forward_intermediates`` / ``prune_intermediate_layers`` (timm 1.0 API) give dense-prediction wrappers the
  block outputs, the class-attention outputs and, for the hybrids, the ConvNeXt stage maps.

Pitfalls this file reproduces on purpose (see the docstrings): channel processing is a gated MLP (sigmoid
gate, temperature after the sigmoid, no output projection), ``mlp_v`` has no activation after fc1,
``norm_v`` has eps 1e-5 while all other norms have 1e-6, LayerScale starts at 1.0, drop path is the same in
every block, the class-attention blocks normalise (and double) the patch tokens, and the Fourier positional
encoding uses floor division in its frequency exponent.
"""
import math
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Mlp, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import named_apply

from ..layers import DropPath, autocast_dtype, cast_for_linears, depthwise_conv, float32_stream, gelu_linear

from .checkpoint_utils import flat_state_dict, source_of
from .pretrained import build_model

__all__ = ['FAN', 'checkpoint_filter_fn']

# Keys that only the NVlabs detection copy of the model has (its random-init 1/32 conv).
DENSE_ONLY_PREFIXES = ('learnable_downsample.',)


# ---------------------------------------------------------------------------------------------------
# Stems
# ---------------------------------------------------------------------------------------------------

def _conv3x3_bn(in_chs: int, out_chs: int, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_chs),
    )


class ConvPatchEmbed(nn.Module):
    """FAN-ViT stem: stride-2 conv3x3 + BN layers with GELU between them (none after the last).

    Patch 16 uses four convs (channels C/8, C/4, C/2, C), patch 8 three (C/4, C/2, C), patch 4 two (C/4, C).
    Returns the tokens (B, N, C), N = Hp * Wp in row-major order, and (Hp, Wp).

    Args:
        patch_size: total stride, 4, 8 or 16.
        in_chans: image channels.
        embed_dim: token width C.
        act_layer: activation between the convs.
    """

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 act_layer: Callable = nn.GELU):
        super().__init__()
        widths = {16: (8, 4, 2, 1), 8: (4, 2, 1), 4: (4, 1)}.get(patch_size)
        if widths is None:
            raise ValueError(f'ConvPatchEmbed: patch_size must be 4, 8 or 16, got {patch_size}')
        self.patch_size = patch_size
        layers, prev = [], in_chans
        for i, div in enumerate(widths):
            if i:
                layers.append(act_layer())
            layers.append(_conv3x3_bn(prev, embed_dim // div))
            prev = embed_dim // div
        self.proj = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.proj(x)
        Hp, Wp = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (Hp, Wp)


class ConvNeXtLayerNorm2d(nn.LayerNorm):
    """Channels-first LayerNorm of the official hybrid stem, with the official variance quirk fixed per layer.

    ``unbiased=True`` normalises by the unbiased (C - 1) variance, as the official ``LayerNorm2d`` does on
    its ``var_mean`` path (taken for non-contiguous inputs: every ConvNeXt block norm and the downsample
    norm in the official forward). Computed as a fused LayerNorm with rescaled eps and weight:
    (x - mu) / sqrt(var_u + eps) = sqrt(f) (x - mu) / sqrt(var_b + f eps), f = (C - 1) / C.

    ``feeds_low_precision=True`` is for norms whose output only feeds convs / linears. Under autocast, an
    input already in the autocast dtype is then normalised as it is (float32 arithmetic inside the kernel,
    output in the autocast dtype) instead of autocast's way: a float32 copy of the input (which the backward
    would keep), a float32 output, and the next layer's cast of it back. The CUDA kernel wants weight and
    bias in the input's dtype, so they are cast as autocast casts conv and linear weights; that rounding
    is the only difference from autocast's float32 LayerNorm.

    Args:
        num_channels: C.
        eps: added to the variance.
        unbiased: use the unbiased variance (see above).
        feeds_low_precision: see above.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6, unbiased: bool = False,
                 feeds_low_precision: bool = False):
        super().__init__(num_channels, eps=eps)
        self.unbiased = unbiased
        self.feeds_low_precision = feeds_low_precision

    def forward_nhwc(self, x: torch.Tensor) -> torch.Tensor:
        """The same normalisation of a channels-last (B, H, W, C) tensor."""
        weight, eps = self.weight, self.eps
        if self.unbiased:
            f = (x.shape[-1] - 1) / x.shape[-1]
            weight, eps = weight * math.sqrt(f), eps * f
        if self.feeds_low_precision and x.dtype == autocast_dtype(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return F.layer_norm(x, self.normalized_shape, weight.to(x.dtype), self.bias.to(x.dtype), eps)
        return F.layer_norm(x, self.normalized_shape, weight, self.bias, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # On a channels_last map (what ConvNeXtStem runs on) both permutes are views, no copies.
        return self.forward_nhwc(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block of the hybrid stem: dw7x7 -> LayerNorm2d (unbiased) -> 1x1 (4C) -> GELU -> 1x1 -> *gamma,
    plus the residual. No drop path (the official stem has none).

    Run eagerly, it keeps the 4C-wide fc1 output for the backward but not the GELU output (recomputed,
    ``gelu_linear``; compiled, inductor's partitioner decides), and under autocast the norm works in the
    autocast dtype (``feeds_low_precision``).

    Args:
        dim: channels.
        mlp_ratio: hidden width of the 1x1 MLP.
        ls_init_value: LayerScale init.
    """

    def __init__(self, dim: int, mlp_ratio: float = 4., ls_init_value: float = 1e-6):
        super().__init__()
        self.conv_dw = depthwise_conv(dim, kernel_size=7)
        self.norm = ConvNeXtLayerNorm2d(dim, eps=1e-6, unbiased=True, feeds_low_precision=True)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), act_layer=nn.GELU, use_conv=True)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Norm and MLP run on the channels-last view, the 1x1 convs as linear layers on it (the official
        # 1x1 conv weights, flattened): on a channels_last map no layout copies at all.
        y = self.norm.forward_nhwc(self.conv_dw(x).permute(0, 2, 3, 1))
        y = F.linear(y, self.mlp.fc1.weight.flatten(1), self.mlp.fc1.bias)
        y = gelu_linear(y, self.mlp.fc2.weight.flatten(1), self.mlp.fc2.bias, self.mlp.act.approximate)
        return torch.addcmul(x, y.permute(0, 3, 1, 2), self.gamma.reshape(-1, 1, 1))


class ConvNeXtStage(nn.Module):
    """Optional (LayerNorm2d (unbiased) + 2x2 stride-2 conv) downsample, then ConvNeXt blocks."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, downsample: bool):
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(
                ConvNeXtLayerNorm2d(in_chs, eps=1e-6, unbiased=True, feeds_low_precision=True),
                nn.Conv2d(in_chs, out_chs, kernel_size=2, stride=2),
            )
        else:
            assert in_chs == out_chs
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(out_chs) for _ in range(depth)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = float32_stream(self.downsample(x))  # one input dtype for every block (see float32_stream)
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x


class ConvNeXtStem(nn.Module):
    """The first two stages of a ConvNeXt (stride 4 then 8), the CNN of FAN-Hybrid.

    Official: ``ConvNeXt(depths=[3, 3] (L: [3, 5]), dims=[128, 256, 512, 1024], use_head=False)`` of
    ``models/convnext_utils.py``; only two stages are built. Stem: conv 4x4 stride 4 + LayerNorm2d (biased:
    its input is a contiguous conv output). Stage 0: no downsample. Stage 1: LayerNorm2d + conv 2x2 stride 2.

    Args:
        in_chans: image channels.
        depths: ConvNeXt blocks per stage.
        dims: channels per stage.
    """

    def __init__(self, in_chans: int = 3, depths: Sequence[int] = (3, 3), dims: Sequence[int] = (128, 256)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
            ConvNeXtLayerNorm2d(dims[0], eps=1e-6, unbiased=False),
        )
        stages, prev = [], dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            stages.append(ConvNeXtStage(prev, dim, depth, downsample=i > 0))
            prev = dim
        self.stages = nn.Sequential(*stages)
        self.dims = tuple(dims)
        self.num_features = prev

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Returns the output of every stage (strides 4, 8), as channels_last maps.

        The stem runs in channels_last memory format: its norms and MLPs work on channels-last views, and
        cuDNN's depthwise convs are fastest there. Values do not depend on the format."""
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        # The stem's norm returns a permuted view of its channels-last result. Compiled with dynamic shapes, a
        # block whose input is a view is traced with the view's base, so the first block of stage 0 would
        # compile graphs of its own (training and inference); one copy of the stride-4 map spares them.
        # (compiled as part of a larger graph there is no such block boundary, and _is_view would break it)
        if not torch.compiler.is_compiling() and x._is_view():
            x = x.clone(memory_format=torch.channels_last)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


class HybridEmbed(nn.Module):
    """FAN-Hybrid stem: ConvNeXt stages (stride 8) then a 2x2 stride-2 conv to the token width (stride 16).

    Args:
        backbone: the ``ConvNeXtStem``.
        embed_dim: token width C.
        patch_size: kernel and stride of ``proj`` (2 in every official model).
    """

    def __init__(self, backbone: ConvNeXtStem, embed_dim: int = 384, patch_size: int = 2):
        super().__init__()
        self.backbone = backbone
        self.patch_size = patch_size
        self.proj = nn.Conv2d(backbone.num_features, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor, return_stages: bool = False):
        stages = self.backbone(x)
        x = self.proj(stages[-1])
        Hp, Wp = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        if return_stages:
            return x, (Hp, Wp), stages
        return x, (Hp, Wp)


class PositionalEncodingFourier(nn.Module):
    """XCiT Fourier positional encoding, classification version (the one the ImageNet weights were trained with).

    For a grid of H x W tokens: y = (i + 1) / (H + 1e-6) * 2 pi, x = (j + 1) / (W + 1e-6) * 2 pi; each is divided
    by ``dim_t[k] = T ** (2 * floor(k / 2) / hidden_dim)`` (k < hidden_dim) and mapped to sin (even k) / cos
    (odd k), interleaved, so each sin/cos pair shares one frequency; [y features, x features] (2 * hidden_dim
    channels) go through a 1x1 conv to C. Recomputed for every grid, so any input size works.

    The NVlabs segmentation and detection copies compute ``torch.div(dim_t, 2)`` (true division), i.e.
    ``dim_t[k] = T ** (k / hidden_dim)``: the cos channels get other frequencies, a different function from
    the one the ImageNet checkpoints learned. fan_mm uses the classification version everywhere, deliberately.

    Args:
        hidden_dim: Fourier features per axis.
        dim: output channels C.
        temperature: T.
    """

    def __init__(self, hidden_dim: int = 32, dim: int = 768, temperature: float = 10000.):
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.scale = 2 * math.pi
        self.temperature = temperature
        self.hidden_dim = hidden_dim
        self.eps = 1e-6

    def forward(self, H: int, W: int) -> torch.Tensor:
        """Returns (1, C, H, W)."""
        device = self.token_projection.weight.device
        y = torch.arange(1, H + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, W + 1, dtype=torch.float32, device=device)
        y = y / (y[-1:] + self.eps) * self.scale
        x = x / (x[-1:] + self.eps) * self.scale
        dim_t = torch.arange(self.hidden_dim, dtype=torch.float32, device=device)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode='floor') / self.hidden_dim)
        pos_y, pos_x = y[:, None] / dim_t, x[:, None] / dim_t
        pos_y = torch.stack([pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()], dim=-1).flatten(1)  # (H, hidden)
        pos_x = torch.stack([pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()], dim=-1).flatten(1)  # (W, hidden)
        pos = torch.cat([pos_y[:, None, :].expand(H, W, -1), pos_x[None, :, :].expand(H, W, -1)], dim=-1)
        pos = pos.permute(2, 0, 1)[None].to(self.token_projection.weight.dtype)
        return self.token_projection(pos)


# ---------------------------------------------------------------------------------------------------
# FAN blocks
# ---------------------------------------------------------------------------------------------------

class TokenMixing(nn.Module):
    """Multi-head self-attention over the tokens, with separate ``q`` and ``kv`` projections (official layout:
    rows [0:C] of ``kv`` are K, [C:2C] are V, each head-major), then ``proj``.

    Args:
        dim: token width C.
        num_heads: heads h (head dim C / h).
        qkv_bias: bias in q and kv.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after ``proj``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        assert dim % num_heads == 0, f'dim {dim} should be divisible by num_heads {num_heads}'
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class DWConv(nn.Module):
    """Depthwise 3x3 conv -> GELU -> BatchNorm -> depthwise 3x3 conv on tokens laid out as an H x W map."""

    def __init__(self, dim: int, act_layer: Callable = nn.GELU, kernel_size: int = 3):
        super().__init__()
        self.conv1 = depthwise_conv(dim, kernel_size)
        self.act = act_layer()
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = depthwise_conv(dim, kernel_size)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        # Row-major (B, N, C) tokens are an NHWC map: view them as an NCHW map in channels_last memory
        # format (no copy); the convs and BatchNorm keep that format, so the way back is a view too.
        x = x.reshape(B, H, W, C).permute(0, 3, 1, 2)
        x = self.conv2(self.bn(self.act(self.conv1(x))))
        return x.permute(0, 2, 3, 1).reshape(B, N, C)


class DWConvMlp(nn.Module):
    """FAN's MLP (``Mlp`` in the official ``models/fan.py``): fc1 -> x + gamma * DWConv(x) -> fc2.

    Unlike a transformer MLP there is **no activation after fc1** (the official module builds one and never
    calls it); the only GELU is inside DWConv. ``gamma`` (hidden,) starts at 1.

    Under autocast ``gamma`` is cast to the dtype of the fc1 output, as autocast casts fc2's weights: the
    sum then stays in that dtype instead of being promoted to a float32 tensor that fc2 casts straight back
    (two passes over the 4C-wide tokens, the widest tensor of the block). It differs from the
    official float32 sum by the rounding of ``gamma``; float32 runs are unchanged.

    Args:
        in_features: input width.
        hidden_features: hidden width (4C in FAN).
        out_features: output width (default: input width).
        act_layer: activation inside DWConv.
        drop: dropout after the DWConv branch and after fc2.
    """

    def __init__(self, in_features: int, hidden_features: Optional[int] = None,
                 out_features: Optional[int] = None, act_layer: Callable = nn.GELU, drop: float = 0.):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = DWConv(hidden_features, act_layer=act_layer)
        self.gamma = nn.Parameter(torch.ones(hidden_features))
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = self.fc1(x)
        x = torch.addcmul(x, self.gamma.to(x.dtype), self.drop(self.dwconv(x, H, W)))  # x + gamma * dwconv(x)
        return self.drop(self.fc2(x))


class ChannelProcessing(nn.Module):
    """FAN's attentional channel processing (Eq. 7 of the paper; official ``ChannelProcessing``).

    A gated MLP: out[b, n, c] = temperature[head(c)] * gate[b, c] * v[b, n, c], with
    v = norm_v(mlp_v(x)) and, per head with channels c of that head,
    gate[b, c] = sigmoid( sum_n softmax_n(q)[b, n, c] * mean_{c' in head} softmax_n(x)[b, n, c'] ),
    q = W_q x. The key is the *unprojected* input, the temperature multiplies *after* the sigmoid, the
    softmaxes run over tokens, and there is no output projection. (The paper's Eq. 6, a softmax channel
    attention, is not what the released models use; the authors confirmed Eq. 7, NVlabs/FAN#22.)
    ``norm_v`` is an ``nn.LayerNorm`` with the default eps 1e-5, as in the official code.

    Args:
        dim: token width C.
        num_heads: heads (the token-mixing heads in FAN-ViT / Hybrid).
        qkv_bias: bias in ``q``.
        attn_drop: dropout on the gate.
        mlp_hidden_dim: hidden width of ``mlp_v``.
        act_layer: activation inside ``mlp_v``'s DWConv.
        drop: dropout inside ``mlp_v``.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.,
                 mlp_hidden_dim: Optional[int] = None, act_layer: Callable = nn.GELU, drop: float = 0.):
        super().__init__()
        assert dim % num_heads == 0, f'dim {dim} should be divisible by num_heads {num_heads}'
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.mlp_v = DWConvMlp(dim, hidden_features=mlp_hidden_dim, act_layer=act_layer, drop=drop)
        self.norm_v = nn.LayerNorm(dim)  # eps 1e-5 on purpose (official)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)

    def channel_gate(self, x: torch.Tensor, x_linear: Optional[torch.Tensor] = None) -> torch.Tensor:
        """temperature * gate of the tokens x (B, N, C), as (B, 1, C), attention dropout applied.

        ``x_linear``: ``x`` as the ``q`` projection should read it (see ``cast_for_linears``)."""
        B, N, C = x.shape
        h = self.num_heads
        # The softmaxes over tokens run on (B, C, N) copies, i.e. over the last, contiguous dimension:
        # softmax over dim 1 of (B, N, C) takes CUDA's strided "spatial" kernel, which was 60% of a
        # FAN-S-Hybrid training step at 896x896 (docs/benchmarks.md). Same values, same order of terms.
        q = self.q(x if x_linear is None else x_linear).transpose(1, 2).softmax(dim=-1).reshape(B, h, C // h, N)
        k = x.transpose(1, 2).softmax(dim=-1).reshape(B, h, C // h, N).mean(dim=2)  # (B, h, N): token importance
        gate = (q @ k.unsqueeze(-1)).squeeze(-1).sigmoid() * self.temperature.reshape(1, h, 1)
        return self.attn_drop(gate).reshape(B, 1, C)

    def value(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        """v = norm_v(mlp_v(x)), (B, N, C)."""
        return self.norm_v(self.mlp_v(x, H, W))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        return self.value(x, H, W) * self.channel_gate(x)


class FANBlock(nn.Module):
    """FAN block (pre-norm): x + g1 * TokenMixing(LN(x)), then x + g2 * ChannelProcessing(LN(x)).

    LayerScale ``gamma1``/``gamma2`` start at ``eta`` (1.0 in every official model).

    Args:
        dim: token width C.
        num_heads: attention heads (also the channel-processing heads).
        mlp_ratio: hidden width of ``mlp.mlp_v`` relative to C.
        qkv_bias: bias in the q / kv projections.
        drop: dropout after projections and inside the MLP.
        attn_drop: dropout on attention weights and on the channel gate.
        drop_path: stochastic depth.
        act_layer: activation.
        norm_layer: norm1 / norm2 (LayerNorm eps 1e-6).
        eta: LayerScale init.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = False,
                 drop: float = 0., attn_drop: float = 0., drop_path: float = 0., act_layer: Callable = nn.GELU,
                 norm_layer: Callable = partial(nn.LayerNorm, eps=1e-6), eta: float = 1.):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = TokenMixing(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                                proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = ChannelProcessing(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                                     mlp_hidden_dim=int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.gamma1 = nn.Parameter(eta * torch.ones(dim))
        self.gamma2 = nn.Parameter(eta * torch.ones(dim))

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        # x + g * f(x) as one addcmul; LayerScale gamma2 folds into the (B, 1, C) channel gate, so the
        # channel-processing branch costs no extra pass over the tokens for it. Drop path (a per-sample
        # scale) is applied to the branch as usual.
        # Under autocast the norm outputs are cast once for all the linears that read them.
        if isinstance(self.drop_path, nn.Identity):
            x = torch.addcmul(x, self.gamma1, self.attn(cast_for_linears(self.norm1(x))))
            y = self.norm2(x)
            y_linear = cast_for_linears(y)
            return torch.addcmul(x, self.mlp.value(y_linear, H, W), self.mlp.channel_gate(y, y_linear) * self.gamma2)
        x = x + self.drop_path(self.gamma1 * self.attn(cast_for_linears(self.norm1(x))))
        y = self.norm2(x)
        y_linear = cast_for_linears(y)
        return x + self.drop_path(self.mlp.value(y_linear, H, W) * (self.mlp.channel_gate(y, y_linear) * self.gamma2))


class ClassAttn(nn.Module):
    """CaiT class attention: the cls token queries all 1 + N tokens (itself included); returns (B, 1, C)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.,
                 proj_drop: float = 0.):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(dim, dim, bias=qkv_bias)
        self.v = nn.Linear(dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q = self.q(x[:, :1]).reshape(B, 1, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(B, 1, C)))


class ClassAttentionBlock(nn.Module):
    """Class-attention block (CaiT / XCiT style, ``tokens_norm=True`` in every FAN model).

    xn = LN1(x); x = x + g1 * [ClassAttn(xn), xn[1:]] -- the patch tokens receive g1 * LN1(x), not an
    attention output --; x = LN2(x) over all tokens (``tokens_norm``; otherwise the cls token only);
    then only the cls token gets g2 * MLP and the result is added to the normalised x, so the patch
    tokens leave the block as 2 * LN2(...).

    Args:
        dim: token width C.
        num_heads: heads.
        mlp_ratio: MLP hidden width relative to C.
        qkv_bias: bias in q / k / v.
        drop: dropout after projections and in the MLP.
        attn_drop: attention dropout.
        drop_path: stochastic depth (0 in the official models).
        act_layer: MLP activation.
        norm_layer: LayerNorm eps 1e-6.
        eta: LayerScale init.
        tokens_norm: normalise all tokens with LN2 (True) or the cls token only.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4., qkv_bias: bool = False,
                 drop: float = 0., attn_drop: float = 0., drop_path: float = 0., act_layer: Callable = nn.GELU,
                 norm_layer: Callable = partial(nn.LayerNorm, eps=1e-6), eta: float = 1.,
                 tokens_norm: bool = True):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = ClassAttn(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        self.gamma1 = nn.Parameter(eta * torch.ones(dim))
        self.gamma2 = nn.Parameter(eta * torch.ones(dim))
        self.tokens_norm = tokens_norm

    def prune_class_token(self) -> None:
        """Keep only what the patch tokens go through (``FAN.prune_class_token``): the norms and ``gamma1``;
        ``forward`` then takes the patch tokens alone."""
        self.attn = self.mlp = None
        self.gamma2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attn is None:  # class token pruned: x holds the patch tokens, and they get what they got with it
            x = x + self.drop_path(self.gamma1 * self.norm1(x))
            if self.tokens_norm:
                x = self.norm2(x)
            return x + self.drop_path(x)
        x_norm1 = self.norm1(x)
        x_attn = torch.cat([self.attn(x_norm1), x_norm1[:, 1:]], dim=1)
        x = x + self.drop_path(self.gamma1 * x_attn)
        if self.tokens_norm:
            x = self.norm2(x)
        else:
            x = torch.cat([self.norm2(x[:, :1]), x[:, 1:]], dim=1)
        cls_token = self.gamma2 * self.mlp(x[:, :1])
        return x + self.drop_path(torch.cat([cls_token, x[:, 1:]], dim=1))


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------

class FAN(nn.Module):
    """Fully Attentional Network (FAN-ViT, or FAN-Hybrid when ``hybrid_depths`` is given).

    stem (ConvPatchEmbed, or ConvNeXt stages + HybridEmbed) -> + Fourier PE -> ``depth`` FAN blocks ->
    cls token prepended -> ``cls_attn_layers`` class-attention blocks -> LayerNorm -> head on the cls token.
    Tokens run at stride 16 in every official variant ("p4" in the hybrid names is the ConvNeXt stem patch).

    Intermediate features (``forward_intermediates``) are indexed over the FAN blocks followed by the
    class-attention blocks: with depth 12 and 2 class-attention layers, 0..11 are the FAN blocks and 12, 13
    (or -2, -1) the class-attention blocks, whose patch tokens (cls dropped) are returned.

    Args:
        patch_size: ConvPatchEmbed stride (ViT only; 4, 8 or 16).
        in_chans: image channels.
        num_classes: classifier outputs (0: no head).
        global_pool: 'token' (the cls token; the only pooling FAN uses).
        embed_dim: token width C.
        depth: FAN blocks.
        num_heads: heads.
        mlp_ratio: MLP width relative to C.
        qkv_bias: bias in q / kv / class-attention projections.
        drop_rate: dropout after the PE, after projections and inside MLPs (official ``drop_rate``).
        attn_drop_rate: attention / channel-gate dropout.
        drop_path_rate: stochastic depth of **every** FAN block (official: uniform, no ramp).
        hybrid_depths: ConvNeXt blocks per stem stage; None builds FAN-ViT.
        hybrid_dims: ConvNeXt stage channels.
        cls_attn_layers: class-attention blocks.
        use_pos_embed: add the Fourier PE.
        eta: LayerScale init of FAN and class-attention blocks.
        tokens_norm: class-attention blocks normalise all tokens.
        act_layer: activation (GELU).
        norm_layer: block norm (LayerNorm eps 1e-6).
        head_init_scale: scales the initial head weights (0.001 for the official hybrid large).
    """

    def __init__(
            self,
            patch_size: int = 16,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'token',
            embed_dim: int = 384,
            depth: int = 12,
            num_heads: int = 8,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            hybrid_depths: Optional[Sequence[int]] = None,
            hybrid_dims: Sequence[int] = (128, 256),
            cls_attn_layers: int = 2,
            use_pos_embed: bool = True,
            eta: float = 1.,
            tokens_norm: bool = True,
            act_layer: Optional[Callable] = None,
            norm_layer: Optional[Callable] = None,
            head_init_scale: float = 1.,
            img_size: Optional[Union[int, Tuple[int, int]]] = None,  # accepted for timm tooling; any size works
    ):
        super().__init__()
        assert global_pool in ('token', ''), f'FAN pools the cls token only, got global_pool={global_pool!r}'
        act_layer = act_layer or nn.GELU
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.is_hybrid = hybrid_depths is not None
        self.grad_checkpointing = False

        if self.is_hybrid:
            stem = ConvNeXtStem(in_chans, depths=hybrid_depths, dims=hybrid_dims)
            self.patch_embed = HybridEmbed(stem, embed_dim=embed_dim, patch_size=2)
        else:
            self.patch_embed = ConvPatchEmbed(patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                                              act_layer=act_layer)
        self.pos_embed = PositionalEncodingFourier(dim=embed_dim) if use_pos_embed else None
        self.pos_drop = nn.Dropout(drop_rate)

        self.blocks = nn.ModuleList([
            FANBlock(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                     attn_drop=attn_drop_rate, drop_path=drop_path_rate, act_layer=act_layer,
                     norm_layer=norm_layer, eta=eta)
            for _ in range(depth)])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.cls_attn_blocks = nn.ModuleList([
            ClassAttentionBlock(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                                attn_drop=attn_drop_rate, act_layer=act_layer, norm_layer=norm_layer, eta=eta,
                                tokens_norm=tokens_norm)
            for _ in range(cls_attn_layers)])
        self.feature_info = [dict(num_chs=embed_dim, reduction=16, module=f'blocks.{i}') for i in range(depth)]
        self.feature_info += [dict(num_chs=embed_dim, reduction=16, module=f'cls_attn_blocks.{i}')
                              for i in range(cls_attn_layers)]

        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights(head_init_scale)

    def init_weights(self, head_init_scale: float = 1.) -> None:
        """Official init: Linear trunc-normal(0.02) / bias 0, DWConv convs normal(0, sqrt(2 / fan_out)),
        ConvNeXt convs trunc-normal(0.02), other convs PyTorch default, cls token trunc-normal(0.02)."""
        if next(self.parameters()).is_meta:  # shapes only (e.g. variant guessing): nothing to initialise
            return
        if self.cls_token is not None:  # None once pruned for dense use
            trunc_normal_(self.cls_token, std=.02)
        named_apply(_init_weights, self)
        if isinstance(self.head, nn.Linear):
            self.head.weight.data.mul_(head_init_scale)
            self.head.bias.data.mul_(head_init_scale)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {'cls_token'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return dict(
            stem=r'^cls_token|pos_embed|patch_embed',
            blocks=[(r'^blocks\.(\d+)', None), (r'^cls_attn_blocks\.(\d+)', (99999,)), (r'^norm', (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        if self.is_hybrid:
            for stage in self.patch_embed.backbone.stages:
                stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            assert global_pool in ('token', '')
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    # ---- forward pieces --------------------------------------------------------------------
    def _embed(self, x: torch.Tensor, return_stages: bool = False):
        stages = []
        if return_stages:
            x, (Hp, Wp), stages = self.patch_embed(x, return_stages=True)
        else:
            x, (Hp, Wp) = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed(Hp, Wp).flatten(2).transpose(1, 2)
        return float32_stream(self.pos_drop(x)), (Hp, Wp), stages  # one input dtype for every FAN block

    def _run(self, blk: nn.Module, *args) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    def _prepend_cls(self, x: torch.Tensor) -> torch.Tensor:
        if self.cls_token is None:  # pruned (prune_class_token, or no class-attention block is needed)
            # a fresh copy, as the concatenation gives: the last FAN block's output can carry an odd batch
            # stride when the batch is 1, which compiled class-attention blocks would each recompile for
            return x.clone(memory_format=torch.contiguous_format)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised tokens after the class-attention blocks, (B, 1 + N, C), cls token first."""
        x, (Hp, Wp), _ = self._embed(x)
        for blk in self.blocks:
            x = self._run(blk, x, Hp, Wp)
        x = self._prepend_cls(x)
        for blk in self.cls_attn_blocks:
            x = self._run(blk, x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0]
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            stem_indices: Optional[Sequence[int]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward that also returns intermediate features.

        Args:
            x: images (B, 3, H, W).
            indices: blocks to return, over FAN blocks then class-attention blocks (see class doc): last n if
                int, all if None, those listed otherwise (negative counts from the end).
                Class-attention outputs are the patch tokens (cls dropped).
            stem_indices: FAN-Hybrid only: ConvNeXt stage maps to return in front of the block features
                (0: 128 channels at stride 4, 1: 256 at stride 8); always NCHW.
            norm: apply the final norm to the block features.
            stop_early: with ``intermediates_only``, stop after the last requested block.
            output_fmt: 'NCHW' (B, C, H/16, W/16) or 'NLC' (B, N, C) for block features.
            intermediates_only: return only the list of features.
        Returns:
            the features, or (forward_features output, features).
        """
        assert output_fmt in ('NCHW', 'NLC'), 'output_fmt must be NCHW or NLC'
        n_blocks = len(self.blocks)
        take_indices, max_index = feature_take_indices(n_blocks + len(self.cls_attn_blocks), indices)
        stem_indices = list(stem_indices or [])
        if stem_indices and not self.is_hybrid:
            raise ValueError('stem_indices needs a FAN-Hybrid model (FAN-ViT has no ConvNeXt stages)')
        stop = stop_early and intermediates_only

        x, (Hp, Wp), stages = self._embed(x, return_stages=bool(stem_indices))
        feats = [stages[i] for i in stem_indices]
        inter = []
        for i, blk in enumerate(self.blocks):
            if stop and i > max_index:
                break
            x = self._run(blk, x, Hp, Wp)
            if i in take_indices:
                inter.append(self.norm(x) if norm else x)
        if not stop or max_index >= n_blocks:
            x = self._prepend_cls(x)
            for j, blk in enumerate(self.cls_attn_blocks):
                if stop and n_blocks + j > max_index:
                    break
                x = self._run(blk, x)
                if n_blocks + j in take_indices:
                    inter.append((self.norm(x) if norm else x)[:, self.num_prefix_tokens:])
        if output_fmt == 'NCHW':
            B = x.shape[0]
            inter = [y.reshape(B, Hp, Wp, -1).permute(0, 3, 1, 2).contiguous() for y in inter]
        feats += inter
        if intermediates_only:
            return feats
        return self.norm(x), feats

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop what the requested intermediates do not need (later blocks; class attention and cls token
        if no class-attention output is requested; the head and / or final norm)."""
        n_blocks = len(self.blocks)
        take_indices, max_index = feature_take_indices(n_blocks + len(self.cls_attn_blocks), indices)
        if max_index < n_blocks:
            self.blocks = self.blocks[:max_index + 1]
            self.cls_attn_blocks = nn.ModuleList()
            self.cls_token = None
        else:
            self.cls_attn_blocks = self.cls_attn_blocks[:max_index + 1 - n_blocks]
        self.feature_info = self.feature_info[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def prune_class_token(self) -> None:
        """Drop the class token and all that only it reads, for dense use of the patch tokens.

        Class attention updates the class token alone (its query is the class token, its MLP and ``gamma2``
        act on that token only), and the norms work token by token, so the patch tokens leaving the
        class-attention blocks never depend on the class token. The official dense backbones compute its
        path all the same and drop it; its parameters then get zero gradients. What is left (the blocks'
        norms and ``gamma1``) gives the patch tokens exactly what they got; the classifier no longer works
        (``forward_features`` returns the patch tokens, without a class token).
        """
        self.cls_token = None
        self.num_prefix_tokens = 0
        for blk in self.cls_attn_blocks:
            blk.prune_class_token()


def _init_weights(module: nn.Module, name: str = '') -> None:
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, DWConv):
        for conv in (module.conv1, module.conv2):
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
            nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / fan_out))
            nn.init.zeros_(conv.bias)
    elif isinstance(module, ConvNeXtStem):
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                trunc_normal_(conv.weight, std=.02)
                nn.init.zeros_(conv.bias)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official FAN checkpoint (any container) -> this file's names; a pure remap (the check is
    ``checkpoint_utils.check_state_dict``, run by the loader).

    Accepts a flat state_dict or one under ``state_dict_ema`` / ``state_dict`` / ``model``, with or without
    ``module.``; mm-style files (``backbone.`` and fan_mm's ``backbone.trunk.`` prefixes) are reduced to the
    classification names; ``pos_embeder.`` is renamed ``pos_embed.`` (older XCiT-style files); a fused
    class-attention ``qkv`` is split into q / k / v; the NVlabs detection copy's ``learnable_downsample`` is
    dropped (a classification model has no place for it).
    """
    state_dict = flat_state_dict(state_dict, source_of(state_dict))
    for prefix in ('backbone.', 'trunk.'):
        if any(k.startswith(prefix) for k in state_dict):
            state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    out = {}
    for k, v in state_dict.items():
        if k.startswith(DENSE_ONLY_PREFIXES):
            continue
        k = k.replace('pos_embeder.', 'pos_embed.')
        if k.startswith('cls_attn_blocks.') and '.attn.qkv.' in k:
            base, kind = k.split('.attn.qkv.')
            for name, part in zip('qkv', v.reshape(3, -1, *v.shape[1:]).unbind(0)):
                out[f'{base}.attn.{name}.{kind}'] = part
            continue
        out[k] = v
    return out


def _create_fan(variant: str, pretrained: bool = False, **kwargs) -> FAN:
    return build_model(FAN, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                       feature_cfg=dict(out_indices=3), **kwargs)


def _cfg(file_name: str = '', **kwargs) -> Dict:
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': None,
        'crop_pct': 1.0, 'interpolation': 'bicubic', 'fixed_input_size': False,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj.0.0', 'classifier': 'head',
        'license': 'other', 'origin_url': 'https://github.com/NVlabs/FAN', 'paper_ids': 'arXiv:2204.12451',
        'notes': (f'official file: {file_name}',) if file_name else None,
        **kwargs,
    }


_HYBRID = dict(first_conv='patch_embed.backbone.stem.0')

default_cfgs = generate_default_cfgs({
    'fan_tiny_12_p16_224.in1k': _cfg('fan_vit_tiny.pth.tar'),
    'fan_small_12_p16_224.in1k': _cfg('fan_vit_small.pth.tar'),
    'fan_base_18_p16_224.in1k': _cfg('fan_vit_base.pth.tar'),
    'fan_large_24_p16_224.in1k': _cfg(),
    'fan_tiny_8_p4_hybrid.in1k': _cfg('fan_hybrid_tiny.pth.tar', **_HYBRID),
    'fan_small_12_p4_hybrid.in1k': _cfg('fan_hybrid_small.pth.tar', **_HYBRID),
    'fan_base_16_p4_hybrid.in1k': _cfg('fan_hybrid_base.pth.tar', **_HYBRID),
    'fan_base_16_p4_hybrid.in22k_ft_in1k': _cfg('fan_hybrid_base_in22k_1k.pth.tar', **_HYBRID),
    'fan_base_16_p4_hybrid.in22k_ft_in1k_384': _cfg(
        'fan_hybrid_base_in22k_1k_384.pth.tar', input_size=(3, 384, 384), **_HYBRID),
    'fan_large_16_p4_hybrid.in1k': _cfg(**_HYBRID),
    'fan_large_16_p4_hybrid.in22k_ft_in1k': _cfg('fan_hybrid_large_in22k_1k.pth.tar', **_HYBRID),
    'fan_large_16_p4_hybrid.in22k_ft_in1k_384': _cfg(
        'fan_hybrid_large_in22k_1k_384.pth.tar', input_size=(3, 384, 384), **_HYBRID),
})


# FAN-ViT: ConvPatchEmbed p16 + FAN blocks. Names as registered by NVlabs.

@register_model
def fan_tiny_12_p16_224(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(patch_size=16, embed_dim=192, depth=12, num_heads=4)
    return _create_fan('fan_tiny_12_p16_224', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def fan_small_12_p16_224(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(patch_size=16, embed_dim=384, depth=12, num_heads=8)
    return _create_fan('fan_small_12_p16_224', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def fan_base_18_p16_224(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(patch_size=16, embed_dim=448, depth=18, num_heads=8)
    return _create_fan('fan_base_18_p16_224', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def fan_large_24_p16_224(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(patch_size=16, embed_dim=480, depth=24, num_heads=10)
    return _create_fan('fan_large_24_p16_224', pretrained=pretrained, **dict(model_args, **kwargs))


# FAN-Hybrid: two ConvNeXt stages + HybridEmbed. The official depths differ from the names: small has 10 FAN
# blocks, large 22 (and a [3, 5] ConvNeXt).

@register_model
def fan_tiny_8_p4_hybrid(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(embed_dim=192, depth=8, num_heads=8, hybrid_depths=(3, 3))
    return _create_fan('fan_tiny_8_p4_hybrid', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def fan_small_12_p4_hybrid(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(embed_dim=384, depth=10, num_heads=8, hybrid_depths=(3, 3))
    return _create_fan('fan_small_12_p4_hybrid', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def fan_base_16_p4_hybrid(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(embed_dim=448, depth=16, num_heads=8, hybrid_depths=(3, 3))
    return _create_fan('fan_base_16_p4_hybrid', pretrained=pretrained, **dict(model_args, **kwargs))


@register_model
def fan_large_16_p4_hybrid(pretrained: bool = False, **kwargs) -> FAN:
    model_args = dict(embed_dim=480, depth=22, num_heads=10, hybrid_depths=(3, 5), head_init_scale=0.001)
    return _create_fan('fan_large_16_p4_hybrid', pretrained=pretrained, **dict(model_args, **kwargs))
