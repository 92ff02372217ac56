"""Per-block token features of timm, fan_mm and mm backbones, through one interface.

The FAN paper (Zhou et al., ICML 2022, Sec. 2.2 and App. A.6) studies the token features of every block:
ViT blocks, the bottleneck blocks of ResNet-50, and so on. ``forward_intermediates`` of timm models gives
stage outputs for hierarchical models only, so this module hooks every *block* instead:

- a block is a child of a container named ``blocks`` (timm ViT, DeiT, FAN, LV-ViT, Swin ``layers.i.blocks``,
  ConvNeXt ``stages.i.blocks``, the ConvNeXt stem of FAN-Hybrid, mmdet Swin ``stages.i.blocks``) or of a
  ResNet stage ``layer1`` ... ``layer4`` (timm and mmdet ResNets); ``cls_attn_blocks`` (FAN's class-attention
  head, whose patch tokens are only re-normalised) is not a block here;
- the output of a block is turned into spatial tokens ``B x N x C`` with the token grid ``(h, w)``: channel-first
  maps are flattened row-major, channel-last maps (timm Swin) are reshaped, token sequences lose their prefix
  (class / distillation / register) tokens, found from the token count and the input size.

Blocks are ordered as the model registers them, which is the forward order for all families above;
:class:`BlockFeatureExtractor` checks this on every forward and warns when the hooks fire in another order.
"""
from __future__ import annotations

import difflib
import math
import os.path as osp
import re
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_RESNET_STAGE = re.compile(r'^layer\d+$')
_MAX_PREFIX_TOKENS = 16


@dataclass
class BlockFeatures:
    """Spatial token features of one block for a batch of images.

    ``tokens`` is ``B x N x C`` with ``N == grid[0] * grid[1]`` tokens in row-major order (prefix tokens
    removed); ``index`` is the block's position in :attr:`BlockFeatureExtractor.block_names`.
    """
    name: str
    index: int
    tokens: torch.Tensor
    grid: Tuple[int, int]


@dataclass
class LoadedModel:
    """A model ready for feature extraction, with its input preprocessing.

    ``mean`` / ``std`` apply to pixels scaled to [0, 1] (RGB unless ``extra['bgr']``); ``input_size`` is
    ``(H, W)``; ``label`` names the model and its weights for figures and CSVs (``random init`` when no
    checkpoint was given).
    """
    model: nn.Module
    name: str
    label: str
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    input_size: Tuple[int, int] = (224, 224)
    pretrained: bool = False
    extra: Dict = field(default_factory=dict)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``B x 3 x H x W`` RGB in [0, 1] -> model input."""
        mean = pixels.new_tensor(self.mean).view(1, 3, 1, 1)
        std = pixels.new_tensor(self.std).view(1, 3, 1, 1)
        return (pixels - mean) / std


# --------------------------------------------------------------------------------------------------------------
# Finding the blocks

def find_blocks(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """All blocks of ``model`` as ``(qualified name, module)``, in registration order.

    A container is an ``nn.Sequential`` / ``nn.ModuleList`` whose own name is ``blocks`` or ``layer<k>``;
    containers nested inside a block (a block that itself has ``blocks``) are not descended into.
    """
    found = []
    taken = []  # prefixes of blocks already collected, to skip their insides
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in taken):
            continue
        leaf = name.rsplit('.', 1)[-1]
        if not isinstance(module, (nn.Sequential, nn.ModuleList)):
            continue
        if leaf != 'blocks' and not _RESNET_STAGE.match(leaf):
            continue
        for child_name, child in module.named_children():
            qualified = f'{name}.{child_name}'
            found.append((qualified, child))
            taken.append(qualified + '.')
    return found


def stage_last_blocks(names: Sequence[str]) -> List[int]:
    """Indices of the last block of each container (the stage outputs of hierarchical models)."""
    last = {}
    for i, name in enumerate(names):
        last[name.rsplit('.', 1)[0]] = i
    return sorted(last.values())


def resolve_blocks(names: Sequence[str], blocks: Union[None, str, int, Sequence[Union[int, str]]]) -> List[int]:
    """Turn a block selection into sorted unique indices into ``names``.

    ``blocks`` may be ``None`` / ``'all'`` (every block), ``'stages'`` (last block of each container), an int
    (negative counts from the end, so ``-2`` is the paper's "second last block"), a qualified block name, or a
    sequence of those. Strings of digits are read as ints, so command-line values work unchanged.
    """
    n = len(names)
    if blocks is None or (isinstance(blocks, str) and blocks == 'all'):
        return list(range(n))
    if isinstance(blocks, str) and blocks == 'stages':
        return stage_last_blocks(names)
    if isinstance(blocks, (int, str)):
        blocks = [blocks]
    out = []
    for b in blocks:
        if isinstance(b, str) and b in ('all', 'stages'):
            out.extend(resolve_blocks(names, b))
            continue
        if isinstance(b, str) and re.fullmatch(r'-?\d+', b):
            b = int(b)
        if isinstance(b, int):
            if not -n <= b < n:
                raise ValueError(f'block index {b} out of range: the model has {n} blocks '
                                 f'(valid: {-n} .. {n - 1})')
            out.append(b % n)
        elif b in names:
            out.append(names.index(b))
        else:
            close = difflib.get_close_matches(str(b), names, n=3)
            raise ValueError(f'unknown block {b!r}; expected an index, "all", "stages" or a block name'
                             + (f' such as {close}' if close else f' (first blocks: {list(names[:3])})'))
    return sorted(set(out))


# --------------------------------------------------------------------------------------------------------------
# Block outputs -> spatial tokens

def _grid_for(n_tokens: int, image_hw: Tuple[int, int]) -> Optional[Tuple[int, int]]:
    """The grid ``(ceil(H/s), ceil(W/s))`` with ``n_tokens`` cells for an integer stride ``s``, if any."""
    H, W = image_hw
    for s in range(1, max(H, W) + 1):
        h, w = math.ceil(H / s), math.ceil(W / s)
        if h * w == n_tokens:
            return h, w
        if h * w < n_tokens:
            return None
    return None


def _is_grid(h: int, w: int, image_hw: Tuple[int, int]) -> bool:
    """Whether ``(h, w)`` is the token grid of ``image_hw`` for some integer stride."""
    H, W = image_hw
    s = max(1, round(H / h))
    return math.ceil(H / s) == h and math.ceil(W / s) == w


def to_tokens(output, image_hw: Tuple[int, int], num_prefix_tokens: Optional[int] = None,
              layout: Optional[str] = None) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Spatial tokens ``B x N x C`` and grid ``(h, w)`` of one block output.

    Args:
        output: the block's output: a tensor, or a tuple / list whose first tensor is the features.
        image_hw: the input image size, used to recognise the spatial dimensions.
        num_prefix_tokens: tried first for token sequences (e.g. timm's ``model.num_prefix_tokens``); the token
            count decides, so a model whose blocks have no class token (FAN) still works.
        layout: ``'NCHW'`` or ``'NHWC'`` for 4-D outputs whose layout the shape alone cannot tell.
    """
    if isinstance(output, (tuple, list)):
        tensors = [o for o in output if torch.is_tensor(o)]
        if not tensors:
            raise TypeError('block output holds no tensor')
        output = tensors[0]
    if not torch.is_tensor(output):
        raise TypeError(f'block output is a {type(output).__name__}, not a tensor')
    x = output.detach()
    if x.ndim == 4:
        nchw = _is_grid(x.shape[2], x.shape[3], image_hw)
        nhwc = _is_grid(x.shape[1], x.shape[2], image_hw)
        if nchw and nhwc:
            if layout is None:
                raise ValueError(f'cannot tell NCHW from NHWC for a block output of shape {tuple(x.shape)} '
                                 f'and input {image_hw}; pass layout=')
            nhwc = layout.upper() == 'NHWC'
        elif not (nchw or nhwc):
            raise ValueError(f'block output of shape {tuple(x.shape)} is not a feature map of input {image_hw}')
        if nhwc:
            B, h, w, C = x.shape
            return x.reshape(B, h * w, C), (h, w)
        B, C, h, w = x.shape
        return x.flatten(2).transpose(1, 2), (h, w)
    if x.ndim == 3:
        B, L, C = x.shape
        tries = ([num_prefix_tokens] if num_prefix_tokens is not None else []) + list(range(_MAX_PREFIX_TOKENS + 1))
        for p in tries:
            if p < 0 or p >= L:
                continue
            grid = _grid_for(L - p, image_hw)
            if grid is not None:
                return x[:, p:], grid
        raise ValueError(f'{L} tokens do not form a grid of input {image_hw} '
                         f'(with up to {_MAX_PREFIX_TOKENS} prefix tokens)')
    raise ValueError(f'block output of shape {tuple(x.shape)} is neither a feature map nor a token sequence')


class BlockFeatureExtractor:
    """Hooks the blocks of a model and returns their spatial tokens.

    Args:
        model: a timm / fan_mm classifier or an mm backbone (anything :func:`find_blocks` understands).
        blocks: the blocks to return (see :func:`resolve_blocks`); default every block.
        layout: ``'NCHW'`` / ``'NHWC'`` for 4-D block outputs; default from ``model.output_fmt`` where the
            shape is ambiguous (timm's Swin sets ``'NHWC'``).
    """

    def __init__(self, model: nn.Module, blocks=None, layout: Optional[str] = None):
        self.model = model
        found = find_blocks(model)
        if not found:
            raise ValueError(f'found no blocks in {type(model).__name__}: expected containers named "blocks" '
                             f'or "layer<k>" (ViT / Swin / ConvNeXt / ResNet style)')
        self.block_names = [n for n, _ in found]
        self._modules = [m for _, m in found]
        self.indices = resolve_blocks(self.block_names, blocks)
        # 'all' / 'stages' may include blocks a backbone never runs (dense wrappers that stop early)
        self._implicit = blocks is None or blocks in ('all', 'stages') or (
            not isinstance(blocks, (str, int)) and all(b in ('all', 'stages') for b in blocks))
        self.num_prefix_tokens = getattr(model, 'num_prefix_tokens', None)
        self.layout = layout or getattr(model, 'output_fmt', None)

    def __len__(self):
        return len(self.block_names)

    @torch.no_grad()
    def __call__(self, inputs: torch.Tensor) -> List[BlockFeatures]:
        """Run the model on normalised ``inputs`` (``B x 3 x H x W``); features of the selected blocks."""
        outputs, order = {}, []

        def hook(i):
            def fn(module, args, output):
                order.append(i)
                if i in wanted:
                    outputs[i] = output
            return fn

        wanted = set(self.indices)
        # every block is hooked, so that the call order can be checked against the registration order
        handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(self._modules)]
        try:
            self.model(inputs)
        finally:
            for h in handles:
                h.remove()
        if order != sorted(order):
            warnings.warn(f'{type(self.model).__name__}: blocks ran in another order than registered; '
                          f'block indices follow registration order')
        missing = sorted(wanted - set(outputs))
        if missing:
            names = [self.block_names[i] for i in missing]
            if not self._implicit or len(missing) == len(wanted):
                raise RuntimeError(f'blocks {names} did not run in the forward pass of {type(self.model).__name__}')
            warnings.warn(f'blocks {names} did not run in the forward pass and are left out')
        image_hw = tuple(inputs.shape[-2:])
        feats = []
        for i in self.indices:
            if i not in outputs:
                continue
            tokens, grid = to_tokens(outputs[i], image_hw, self.num_prefix_tokens, self.layout)
            feats.append(BlockFeatures(self.block_names[i], i, tokens.float(), grid))
        return feats


# --------------------------------------------------------------------------------------------------------------
# Building models

def _import_fan_mm_models():
    """Register fan_mm's timm models (if the backbone families are installed)."""
    try:
        import fan_mm.models  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the branch state
        warnings.warn(f'fan_mm.models could not be imported ({e}); only timm models are available')


def is_config(spec: str) -> bool:
    return spec.endswith('.py') or osp.isfile(spec)


def _checkpoint_given(checkpoint) -> bool:
    return checkpoint is not None and str(checkpoint).lower() not in ('none', '')


def build_model(spec: str, checkpoint: Optional[str] = None, device: Union[str, torch.device] = 'cpu',
                **model_kwargs) -> LoadedModel:
    """A model for feature extraction from a timm / fan_mm model name or an mm config.

    Args:
        spec: a model name registered in timm (fan_mm's models are registered on import), or the path of an
            mmdet / mmseg config whose ``model.backbone`` is built.
        checkpoint: ``None`` / ``'none'`` for random initialisation; for a timm name, an official ImageNet
            checkpoint loaded through ``timm.create_model(name, pretrained=True,
            pretrained_cfg_overlay=dict(file=checkpoint))``; for a config, an mm checkpoint whose
            ``backbone.*`` weights are loaded.
        device: where the model runs.
        model_kwargs: passed to ``timm.create_model`` (e.g. ``depth=4`` for small test models).
    """
    if is_config(spec):
        loaded = _build_mm_backbone(spec, checkpoint, **model_kwargs)
    else:
        loaded = _build_timm(spec, checkpoint, **model_kwargs)
    loaded.model.to(device).eval()
    return loaded


def _build_timm(name: str, checkpoint, **model_kwargs) -> LoadedModel:
    import timm
    _import_fan_mm_models()
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5)
        raise ValueError(f'{name!r} is neither a config file nor a timm / fan_mm model name'
                         + (f'; did you mean {close}?' if close else ''))
    pretrained = _checkpoint_given(checkpoint)
    if pretrained:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=checkpoint),
                                  **model_kwargs)
    else:
        model = timm.create_model(name, pretrained=False, **model_kwargs)
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    size = tuple(cfg.get('input_size', (3, 224, 224))[1:])
    if 'img_size' in model_kwargs:
        s = model_kwargs['img_size']
        size = (s, s) if isinstance(s, int) else tuple(s)
    label = f'{name} ({osp.basename(checkpoint) if pretrained else "random init"})'
    return LoadedModel(model=model, name=name, label=label, mean=tuple(cfg.get('mean', IMAGENET_MEAN)),
                       std=tuple(cfg.get('std', IMAGENET_STD)), input_size=size, pretrained=pretrained)


def _build_mm_backbone(config: str, checkpoint, img_size=None, **unused) -> LoadedModel:
    """The backbone of an mmdet / mmseg config, with ``backbone.*`` weights of an mm checkpoint.

    Only the backbone is built (no detector / segmentor heads), which is all the analysis needs; its own
    Pretrained ``init_cfg`` (an ImageNet file that may not be here) is not used, weights come from
    ``checkpoint``.
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    if unused:
        raise ValueError(f'model options {sorted(unused)} do not apply to mm configs')
    from fan_mm.models.builder import build_from_config, disable_backbone_compile, load_config
    cfg = load_config(config)
    # eager: the analyses hook into blocks and call the model on few inputs of changing sizes, where
    # compiling (the configs' GPU fast path) would only cost time
    disable_backbone_compile(cfg)
    backbone = build_from_config(cfg, part='backbone', pretrained=False)
    pretrained = _checkpoint_given(checkpoint)
    if pretrained:
        load_backbone_weights(backbone, checkpoint)
    else:
        backbone.init_weights()
    pre = cfg.model.get('data_preprocessor', None) or {}
    mean = tuple(v / 255.0 for v in pre.get('mean', [m * 255 for m in IMAGENET_MEAN]))
    std = tuple(v / 255.0 for v in pre.get('std', [s * 255 for s in IMAGENET_STD]))
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size or (224, 224))
    name = osp.splitext(osp.basename(config))[0]
    label = f'{name} ({osp.basename(checkpoint) if pretrained else "random init"})'
    return LoadedModel(model=backbone, name=name, label=label, mean=mean, std=std, input_size=size,
                       pretrained=pretrained,
                       extra=dict(bgr=pre.get('bgr_to_rgb', pre.get('to_rgb', True)) is False))


def load_backbone_weights(backbone: nn.Module, checkpoint: str) -> Dict[str, List[str]]:
    """Load the ``backbone.*`` weights of an mm checkpoint (or a bare backbone state dict) into ``backbone``.

    The file is read by ``fan_mm.models.checkpoint_utils.load_state_dict_file`` (the loader of every fan_mm
    checkpoint route). A fan_mm dense backbone loads it through its own ``load_pretrained`` (official or
    mm-style files, checked key by key); any other backbone (mmdet's ResNet, Swin, ...) takes the
    ``backbone.*`` keys as they are. Returns the missing and unexpected keys; raises when no key matches,
    which means a wrong config.
    """
    from fan_mm.models.backbones import DenseBackbone
    from fan_mm.models.checkpoint_utils import load_state_dict_file
    if isinstance(backbone, DenseBackbone):
        return backbone.load_pretrained(checkpoint)
    state = load_state_dict_file(checkpoint)
    if any(k.startswith('backbone.') for k in state):
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    result = backbone.load_state_dict(state, strict=False)
    own = set(backbone.state_dict())
    if not own & set(state):
        raise ValueError(f'{checkpoint}: none of its keys match the backbone of the config '
                         f'(e.g. {list(state)[:3]} vs {list(own)[:3]})')
    if result.missing_keys:
        warnings.warn(f'{checkpoint}: {len(result.missing_keys)} backbone keys missing, '
                      f'e.g. {result.missing_keys[:3]}')
    return dict(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys))


# --------------------------------------------------------------------------------------------------------------
# Images

def load_image(path: str) -> np.ndarray:
    """An image file as ``H x W x 3`` uint8 RGB, decoded as mmcv's loader decodes it (grey, palette, RGBA
    and 16-bit files are converted; an unreadable or truncated file raises ``ImageReadError`` naming it):
    :func:`fan_mm.utils.image_io.read_image`."""
    from fan_mm.utils.image_io import read_image
    return read_image(path, 'rgb')


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Resize the short side to ``size`` (bicubic) and crop the centre ``size x size``, uint8 RGB."""
    from PIL import Image
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f'expected an H x W x 3 image, got shape {image.shape}')
    image = np.ascontiguousarray(image[..., :3])
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8) if image.max() <= 1 else \
            np.clip(image, 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    im = Image.fromarray(image).resize((nw, nh), Image.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def to_pixels(images: Sequence[np.ndarray], size: Tuple[int, int]) -> torch.Tensor:
    """Square uint8 RGB crops -> ``B x 3 x H x W`` float pixels in [0, 1] at the model's input ``size``."""
    # copy: crops may be read-only or negatively strided (flips)
    x = torch.stack([torch.from_numpy(np.array(im, dtype=np.uint8, copy=True)).permute(2, 0, 1)
                     for im in images]).float() / 255
    if tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode='bicubic', align_corners=False)
        x = x.clamp(0, 1)
    return x


def model_inputs(loaded: LoadedModel, pixels: torch.Tensor) -> torch.Tensor:
    """``B x 3 x H x W`` RGB pixels in [0, 1] -> normalised model input.

    mm models whose data preprocessor keeps BGR get BGR input, normalised by the config's (BGR) mean / std.
    """
    if loaded.extra.get('bgr'):
        pixels = pixels.flip(1)
    return loaded.normalize(pixels)
