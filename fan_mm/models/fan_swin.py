"""FAN-Swin: Swin Transformer stages with FAN channel processing.

Paper: `Understanding The Robustness in Vision Transformers` - https://arxiv.org/abs/2204.12451
    Zhou, Yu, Xie, Xiao, Anandkumar, Feng, Alvarez. ICML 2022.
Official code: https://github.com/NVlabs/FAN (``models/swin_utils.py``, entry points in
``models/fan.py``), a timm-0.5.4 Swin whose block MLP is FAN's channel processing in the
first three stages and a plain MLP in the last. No FAN-Swin weights were released; files
trained with the official code load unchanged (same state_dict keys, shapes and buffers).

A re-implementation for timm 1.0, checked against goldens of the official code. It keeps
the official layout (patch merging at the *end* of each stage, persistent
``relative_position_index`` and ``attn_mask`` buffers), and adds what dense prediction needs:

* Any input size. The patch embedding pads the image to a multiple of 4, each block pads its
  map to a multiple of the window (then shifts) and crops after attention, patch merging
  pads odd maps - as mmdet's Swin. The shifted-window mask is built for the padded size when
  it differs from the built one. Nothing changes at the size the model was built for.
* ``always_partition=True`` (dense backbones): every stage keeps the configured window and
  odd blocks always shift, as in mmdet's Swin. The official classifier (default ``False``)
  shrinks the window to the stage's map when the map fits in one window and then does not
  shift (at 224: the last stage), with the mask buffers of its build size.
* ``forward_intermediates`` returns each stage's output *before* its patch merging (the
  feature pyramid at strides 4, 8, 16, 32); the official module (and the golden taps
  ``layers.s``) output a stage *after* its merging.

The channel processing is FAN's (``fan_mm.models.fan.ChannelProcessing``) with one
official difference: in FAN-Swin the value MLP has no residual around its depthwise conv
(``x = gamma * DWConv(fc1(x))``; the ``+ x`` is commented out in ``swin_utils.FANMlp``).
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Mlp, PatchEmbed, resize_rel_pos_bias_table, trunc_normal_
from timm.models import generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models.swin_transformer import (WindowAttention as _TimmWindowAttention,
                                          window_partition, window_reverse)

from ..layers import DropPath, float32_stream
from .checkpoint_utils import CheckpointError, flat_state_dict, source_of
from .fan import ChannelProcessing, DWConv, DWConvMlp
from .pretrained import build_model

__all__ = ['FANSwinTransformer', 'checkpoint_filter_fn']


class WindowAttention(_TimmWindowAttention):
    """timm's window attention with relative position bias, ``relative_position_index``
    kept in the state_dict (a persistent buffer, as in the official files)."""

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True,
                 attn_drop: float = 0., proj_drop: float = 0.):
        super().__init__(dim, num_heads=num_heads, window_size=window_size, qkv_bias=qkv_bias,
                         attn_drop=attn_drop, proj_drop=proj_drop)
        index = self.relative_position_index
        delattr(self, 'relative_position_index')
        self.register_buffer('relative_position_index', index)


class ValueMlp(DWConvMlp):
    """FAN-Swin's value MLP: fc1 -> gamma * DWConv(.) -> fc2, without the ``+ x`` of FAN-ViT."""

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = self.drop(self.gamma * self.dwconv(self.fc1(x), H, W))
        return self.drop(self.fc2(x))


class SwinChannelProcessing(ChannelProcessing):
    """FAN channel processing whose ``mlp_v`` is ``ValueMlp`` (official FAN-Swin)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, attn_drop: float = 0.,
                 mlp_hidden_dim: Optional[int] = None, act_layer: Callable = nn.GELU,
                 drop: float = 0.):
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                         mlp_hidden_dim=mlp_hidden_dim, act_layer=act_layer, drop=drop)
        # same attribute, same place in the state_dict
        self.mlp_v = ValueMlp(dim, hidden_features=mlp_hidden_dim, act_layer=act_layer, drop=drop)


def shifted_window_mask(height: int, width: int, window_size: int, shift_size: int,
                        device=None) -> torch.Tensor:
    """(0 / -100) attention mask ``[nW, ws*ws, ws*ws]`` of the shifted windows of a
    ``height x width`` map (both multiples of the window), as the official Swin builds it."""
    img_mask = torch.zeros((1, height, width, 1), device=device)
    cnt = 0
    cuts = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
    for h in cuts:
        for w in cuts:
            img_mask[:, h, w, :] = cnt
            cnt += 1
    windows = window_partition(img_mask, (window_size, window_size)).view(-1, window_size ** 2)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class FANSwinBlock(nn.Module):
    """Swin block: ``x + DP(W-MSA(LN(x)))``, then ``x + DP(MLP(LN(x)))``.

    The MLP is FAN channel processing (``channel_processing=True``) or timm's ``Mlp``.
    Input / output ``[B, H, W, C]``, any H, W (padded to the window inside the attention).

    Args:
        dim: channels.
        input_resolution: map size the block is built for (decides the official window
            shrink and the ``attn_mask`` buffer).
        num_heads: heads of the attention and of the channel processing.
        window_size, shift_size: window and cyclic shift (0: no shift).
        mlp_ratio: hidden width of the MLP / value MLP.
        qkv_bias: bias of qkv and of the channel-processing query.
        drop, attn_drop, drop_path: dropout after projections / on attention, stochastic depth.
        channel_processing: FAN channel processing instead of the MLP.
        always_partition: keep window and shift even if the map fits in one window (and
            keep ``attn_mask`` out of the state_dict, since it depends on the input size).
    """

    def __init__(self, dim: int, input_resolution: Tuple[int, int], num_heads: int,
                 window_size: int = 7, shift_size: int = 0, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, drop: float = 0., attn_drop: float = 0.,
                 drop_path: float = 0., channel_processing: bool = True,
                 always_partition: bool = False, act_layer: Callable = nn.GELU,
                 norm_layer: Callable = nn.LayerNorm):
        super().__init__()
        self.input_resolution = tuple(input_resolution)
        if not always_partition and min(self.input_resolution) <= window_size:
            # official: the map fits in one window -> that window, no shift
            shift_size, window_size = 0, min(self.input_resolution)
        if not 0 <= shift_size < window_size:
            raise ValueError(f'shift_size {shift_size} must be in [0, window_size={window_size})')
        self.window_size = window_size
        self.shift_size = shift_size
        self.channel_processing = channel_processing
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, num_heads, window_size, qkv_bias=qkv_bias,
                                    attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        hidden = int(dim * mlp_ratio)
        if channel_processing:
            self.mlp = SwinChannelProcessing(dim, num_heads=num_heads, qkv_bias=qkv_bias,
                                             attn_drop=attn_drop, mlp_hidden_dim=hidden,
                                             act_layer=act_layer, drop=drop)
        else:
            self.mlp = Mlp(dim, hidden_features=hidden, act_layer=act_layer, drop=drop)
        self._mask_size = self._padded(self.input_resolution)
        mask = None
        if shift_size:
            mask = shifted_window_mask(*self._mask_size, window_size, shift_size)
        self.register_buffer('attn_mask', mask, persistent=not always_partition)

    def _padded(self, size: Tuple[int, int]) -> Tuple[int, int]:
        ws = self.window_size
        return tuple(-(-s // ws) * ws for s in size)

    def _mask(self, Hp: int, Wp: int, device) -> Optional[torch.Tensor]:
        if not self.shift_size:
            return None
        if (Hp, Wp) == self._mask_size and self.attn_mask is not None:
            return self.attn_mask
        return shifted_window_mask(Hp, Wp, self.window_size, self.shift_size, device=device)

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        ws, shift = self.window_size, self.shift_size
        Hp, Wp = self._padded((H, W))
        if (Hp, Wp) != (H, W):
            x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, (ws, ws)).view(-1, ws * ws, C)
        windows = self.attn(windows, mask=self._mask(Hp, Wp, x.device))
        x = window_reverse(windows.view(-1, ws, ws, C), (ws, ws), Hp, Wp)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        if (Hp, Wp) != (H, W):
            x = x[:, :H, :W].contiguous()
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        x = x + self.drop_path(self._attn(self.norm1(x)))
        x = x.reshape(B, H * W, C)
        y = self.norm2(x)
        y = self.mlp(y, H, W) if self.channel_processing else self.mlp(y)
        x = x + self.drop_path(y)
        return x.reshape(B, H, W, C)


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (official order (0,0), (1,0), (0,1), (1,1) in (row, col)),
    LayerNorm(4C), Linear 4C -> 2C without bias. Odd maps are zero-padded at the bottom /
    right first (as mmdet's Swin). ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C]``."""

    def __init__(self, dim: int, norm_layer: Callable = nn.LayerNorm):
        super().__init__()
        self.dim = dim
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = norm_layer(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        if H % 2 or W % 2:
            x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
            H, W = H + H % 2, W + W % 2
        # (B, H/2, 2[row], W/2, 2[col], C) -> channel blocks ordered col-major: (0,0),(1,0),(0,1),(1,1)
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)
        return self.reduction(self.norm(x))


class FANSwinStage(nn.Module):
    """``depth`` blocks (odd ones shifted), then patch merging (the official order)."""

    def __init__(self, dim: int, input_resolution: Tuple[int, int], depth: int, num_heads: int,
                 window_size: int = 7, mlp_ratio: float = 4., qkv_bias: bool = True,
                 drop: float = 0., attn_drop: float = 0.,
                 drop_path: Union[float, Sequence[float]] = 0., channel_processing: bool = True,
                 downsample: bool = True, always_partition: bool = False,
                 norm_layer: Callable = nn.LayerNorm):
        super().__init__()
        self.grad_checkpointing = False
        self.blocks = nn.ModuleList([
            FANSwinBlock(dim, input_resolution, num_heads, window_size=window_size,
                         shift_size=0 if i % 2 == 0 else window_size // 2, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop,
                         drop_path=drop_path[i] if isinstance(drop_path, (list, tuple)) else drop_path,
                         channel_processing=channel_processing, always_partition=always_partition,
                         norm_layer=norm_layer)
            for i in range(depth)])
        self.downsample = PatchMerging(dim, norm_layer) if downsample else None

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        x = float32_stream(x)  # one input dtype for every block (see float32_stream)
        for blk in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_blocks(x)
        return self.downsample(x) if self.downsample is not None else x


class FANSwinTransformer(nn.Module):
    """FAN-Swin classifier: patch embed 4x4 + LN, four Swin stages (FAN channel processing in
    the stages whose ``mlp_types`` entry is ``'fan'``), final LN, average pool, linear head.

    Args:
        img_size: size the stages are built for (official window shrink, mask buffers).
        patch_size: patch embedding stride (4).
        in_chans, num_classes: input channels, classes (0: no head).
        global_pool: ``'avg'`` (official) or ``''`` (no pooling in ``forward_head``).
        embed_dim: channels of stage 0 (doubling per stage).
        depths, num_heads: blocks and heads per stage.
        window_size: attention window (7).
        mlp_ratio, qkv_bias: MLP width ratio, qkv (and channel-processing query) bias.
        drop_rate, attn_drop_rate, drop_path_rate: dropouts; stochastic depth is linear from
            0 over all blocks (official default 0.1).
        mlp_types: per stage ``'fan'`` (channel processing) or ``'mlp'``.
        always_partition: dense mode, see the module docstring.
        norm_layer: LayerNorm (eps 1e-5 everywhere, as the official model).
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            patch_size: int = 4,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            embed_dim: int = 96,
            depths: Sequence[int] = (2, 2, 6, 2),
            num_heads: Sequence[int] = (3, 6, 12, 24),
            window_size: int = 7,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.1,
            mlp_types: Sequence[str] = ('fan', 'fan', 'fan', 'mlp'),
            always_partition: bool = False,
            norm_layer: Callable = nn.LayerNorm,
    ):
        super().__init__()
        if global_pool not in ('avg', ''):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        if len(depths) != len(num_heads) or len(depths) != len(mlp_types):
            raise ValueError(f'depths {depths}, num_heads {num_heads} and mlp_types {mlp_types} '
                             'need one entry per stage')
        bad = [t for t in mlp_types if t not in ('fan', 'mlp')]
        if bad:
            raise ValueError(f"mlp_types entries must be 'fan' or 'mlp', got {bad}")
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_layers = len(depths)
        self.embed_dim = embed_dim
        self.num_features = self.head_hidden_size = int(embed_dim * 2 ** (self.num_layers - 1))
        self.always_partition = always_partition

        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim, norm_layer=norm_layer,
                                      strict_img_size=False, dynamic_img_pad=True,
                                      output_fmt='NHWC')
        grid = self.patch_embed.grid_size
        self.pos_drop = nn.Dropout(p=drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.feature_info = []
        stages = []
        for i in range(self.num_layers):
            dim = int(embed_dim * 2 ** i)
            stages.append(FANSwinStage(
                dim, (grid[0] // 2 ** i, grid[1] // 2 ** i), depths[i], num_heads[i],
                window_size=window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop=drop_rate,
                attn_drop=attn_drop_rate, drop_path=dpr[sum(depths[:i]):sum(depths[:i + 1])],
                channel_processing=mlp_types[i] == 'fan', downsample=i < self.num_layers - 1,
                always_partition=always_partition, norm_layer=norm_layer))
            self.feature_info.append(dict(num_chs=dim, reduction=patch_size * 2 ** i,
                                          module=f'layers.{i}'))
        self.layers = nn.Sequential(*stages)
        self.norm = norm_layer(self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if not self.norm.weight.is_meta:  # meta builds (shape checks) need no init, and it is slow
            self.apply(_init_weights)

    @torch.jit.ignore
    def no_weight_decay(self):
        return set()

    @torch.jit.ignore
    def no_weight_decay_keywords(self):
        return {'relative_position_bias_table'}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict:
        return dict(stem=r'^patch_embed',
                    blocks=r'^layers\.(\d+)' if coarse else [
                        (r'^layers\.(\d+)\.blocks\.(\d+)', None),
                        (r'^layers\.(\d+)\.downsample', (99998,)), (r'^norm', (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ('avg', ''):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final normalised map ``[B, H/32, W/32, C]``."""
        x = self.pos_drop(self.patch_embed(x))
        x = self.layers(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == 'avg':
            x = x.mean(dim=(1, 2))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ):
        """Outputs of the stages in ``indices`` *before* their patch merging (strides 4, 8,
        16, 32 for patch size 4), ``NCHW`` or ``NHWC``. ``norm`` applies the final norm to
        the last stage's output (the only one it is sized for)."""
        if output_fmt not in ('NCHW', 'NHWC'):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(self.num_layers, indices)
        x = self.pos_drop(self.patch_embed(x))
        stages = self.layers[:max_index + 1] if stop_early else self.layers
        intermediates = []
        last = self.num_layers - 1
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take_indices:
                y = self.norm(x) if norm and i == last else x
                intermediates.append(y.permute(0, 3, 1, 2).contiguous() if output_fmt == 'NCHW' else y)
            if stage.downsample is not None:
                x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return (self.norm(x) if len(stages) == self.num_layers else x), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True):
        """Drop the stages after the last of ``indices``, the patch merging that feeds them (and the final
        norm / head)."""
        take_indices, max_index = feature_take_indices(self.num_layers, indices)
        self.layers = self.layers[:max_index + 1]
        self.layers[max_index].downsample = None
        if prune_norm or max_index < self.num_layers - 1:
            self.norm = nn.Identity()
        if prune_head or max_index < self.num_layers - 1:
            self.reset_classifier(0, '')
        return take_indices


def _init_weights(m: nn.Module):
    """Official init: trunc-normal(.02) Linear weights, zero biases, unit LayerNorms
    (timm 0.5.4 ``_init_vit_weights``), He-normal (fan-out) depthwise convs of the channel
    processing; relative position tables trunc-normal(.02) (in ``WindowAttention``)."""
    if isinstance(m, DWConv):
        for conv in (m.conv1, m.conv2):
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
            nn.init.normal_(conv.weight, 0, (2.0 / fan_out) ** 0.5)
            nn.init.zeros_(conv.bias)
    elif isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def checkpoint_filter_fn(state_dict, model: FANSwinTransformer) -> Dict[str, torch.Tensor]:
    """Official FAN-Swin checkpoint -> this model's state_dict: a remap, shapes unchecked (the loader's
    ``checkpoint_utils.check_state_dict`` checks them).

    Unwraps the official containers; resizes relative position tables to the model's windows
    (bicubic, timm's ``resize_rel_pos_bias_table``) where the model was built with other
    windows; checks the file's ``relative_position_index`` / ``attn_mask`` buffers against
    the ones the model builds (equal for the same windows and size: a different buffer means
    the file was made by another architecture) and keeps the model's own, also where the
    file has none; drops the masks when the model does not store them (dense mode).
    """
    source = source_of(state_dict)
    state_dict = flat_state_dict(state_dict, source)
    own = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        if key.endswith(('relative_position_index', 'attn_mask')):
            mine = own.get(key)
            if mine is None:
                continue  # dense mode: masks depend on the input and are not stored
            if mine.is_meta:  # a model built on the meta device (checkpoint conversion)
                out[key] = value
                continue
            if mine.shape == value.shape and key.endswith('relative_position_index') \
                    and not torch.equal(mine, value.to(mine.dtype)):
                raise CheckpointError(
                    f'{source}: {key} differs from the index this model builds for its '
                    f'{tuple(mine.shape)} window; the file was not made by a Swin with the '
                    'same window layout')
            if mine.shape == value.shape and key.endswith('attn_mask') \
                    and not torch.equal((mine < 0), (value < 0)):
                raise CheckpointError(f'{source}: {key} masks other window pairs than the '
                                      'shifted windows of this model')
            value = mine
        elif key.endswith('relative_position_bias_table') and key in own \
                and own[key].shape != value.shape and own[key].shape[1] == value.shape[1]:
            window = model.get_submodule(key.rsplit('.', 1)[0]).window_size  # (h, w) of the attention
            value = resize_rel_pos_bias_table(value, new_window_size=window,
                                              new_bias_shape=own[key].shape)
        out[key] = value
    for key in own:  # derived buffers the file does not carry
        if key.endswith(('relative_position_index', 'attn_mask')) and key not in out \
                and not own[key].is_meta:
            out[key] = own[key]
    return out


def _create_fan_swin(variant: str, pretrained: bool = False, **kwargs) -> FANSwinTransformer:
    return build_model(FANSwinTransformer, variant, pretrained,
                       pretrained_filter_fn=checkpoint_filter_fn,
                       feature_cfg=dict(out_indices=(0, 1, 2, 3)), **kwargs)


def _cfg(**kwargs) -> Dict:
    return {
        'url': '', 'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': .9, 'interpolation': 'bicubic', 'fixed_input_size': True,
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'patch_embed.proj', 'classifier': 'head',
        'license': 'other', 'origin_url': 'https://github.com/NVlabs/FAN',
        'paper_ids': 'arXiv:2204.12451',
        'notes': ('NVlabs released no FAN-Swin weights; pass a file trained with the official '
                  'code.',),
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    'fan_swin_tiny_patch4_window7_224.untrained': _cfg(),
    'fan_swin_small_patch4_window7_224.untrained': _cfg(),
    'fan_swin_base_patch4_window7_224.untrained': _cfg(),
    'fan_swin_large_patch4_window7_224.untrained': _cfg(),
})


@register_model
def fan_swin_tiny_patch4_window7_224(pretrained: bool = False, **kwargs) -> FANSwinTransformer:
    """FAN-Swin-T @ 224 (29.5M)."""
    args = dict(patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 6, 2),
                num_heads=(3, 6, 12, 24))
    return _create_fan_swin('fan_swin_tiny_patch4_window7_224', pretrained, **dict(args, **kwargs))


@register_model
def fan_swin_small_patch4_window7_224(pretrained: bool = False, **kwargs) -> FANSwinTransformer:
    """FAN-Swin-S @ 224 (53.1M)."""
    args = dict(patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 18, 2),
                num_heads=(3, 6, 12, 24))
    return _create_fan_swin('fan_swin_small_patch4_window7_224', pretrained, **dict(args, **kwargs))


@register_model
def fan_swin_base_patch4_window7_224(pretrained: bool = False, **kwargs) -> FANSwinTransformer:
    """FAN-Swin-B @ 224 (93.6M)."""
    args = dict(patch_size=4, window_size=7, embed_dim=128, depths=(2, 2, 18, 2),
                num_heads=(4, 8, 16, 32))
    return _create_fan_swin('fan_swin_base_patch4_window7_224', pretrained, **dict(args, **kwargs))


@register_model
def fan_swin_large_patch4_window7_224(pretrained: bool = False, **kwargs) -> FANSwinTransformer:
    """FAN-Swin-L @ 224 (208.9M)."""
    args = dict(patch_size=4, window_size=7, embed_dim=192, depths=(2, 2, 18, 2),
                num_heads=(6, 12, 24, 48))
    return _create_fan_swin('fan_swin_large_patch4_window7_224', pretrained, **dict(args, **kwargs))
