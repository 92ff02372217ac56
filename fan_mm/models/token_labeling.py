"""Token labeling and MixToken (Jiang et al., "All Tokens Matter", NeurIPS 2021).

Reusable pieces of the official training recipe (zihangJiang/TokenLabeling, ``tlt/``):

* MixToken: a box in token space, tokens inside it taken from the batch-flipped partner
  (sample b <-> B-1-b), the dense outputs swapped back afterwards so that every token keeps
  the label of the image content it was computed from (``sample_token_box``,
  ``swap_box_with_flipped``, ``box_lambda``).
* Dense score-map targets: top-k logit maps (one file per image, as written by the
  official ``generate_label.py``: ``[2, k, H, W]`` = values, class indices) turned into a
  dense logit map, flipped with the image, cropped with the image's random-resized-crop
  box by ``roi_align`` on the logits, then softmax and label smoothing
  (``topk_to_dense``, ``hflip_score_map``, ``crop_token_labels``, ``token_label_target``).
* ``TokenLabelCrossEntropy``: class term plus ``dense_weight`` times the token term, with
  the MixToken lambda correction of the class target.

Deliberate choices (see ``docs`` and the tests):

* ``dense_weight`` defaults to 0.5, the paper's beta. The official ``main.py`` defaults to
  1.0 (and VOLO to 0.5); pass ``dense_weight=1.0`` to reproduce the released LV-ViT runs.
* The crop box: the official code hands ``(top, left, bottom, right)`` to ``roi_align``,
  which reads ``(x1, y1, x2, y2)``, so every crop's labels come from the crop box reflected
  about the map's diagonal, and it scales both axes by the map width. Here the box is
  passed in roi_align's own order and each axis is scaled by its own map size, so the
  token labels describe the pixels the crop shows. ``official_transposed_crop=True``
  reproduces the official targets exactly (for replicating the released models).
* The random numbers come from torch (optionally a ``torch.Generator``), not from the
  global ``np.random`` of the official code (whose ``np.int`` no longer exists).
"""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Box = Tuple[int, int, int, int]


# --------------------------------------------------------------------------------------
# MixToken
# --------------------------------------------------------------------------------------
def rand_token_box(grid_size: Sequence[int], lam: float,
                   generator: Optional[torch.Generator] = None,
                   center: Optional[Tuple[int, int]] = None) -> Box:
    """CutMix-style box ``(r1, c1, r2, c2)`` (rows ``r1:r2``, cols ``c1:c2``) on a token grid.

    As the official ``rand_bbox``: on each axis the side is ``int(g * sqrt(1 - lam))``, the
    centre is uniform in ``[0, g)`` (or ``center``), the box is ``[c - side // 2, c + side // 2)``
    clipped to the grid (so an unclipped side is even). The mixing weight is recomputed from
    the clipped area by ``box_lambda``.
    """
    rows, cols = int(grid_size[0]), int(grid_size[1])
    ratio = math.sqrt(1. - float(lam))
    cut_r, cut_c = int(rows * ratio), int(cols * ratio)
    if center is None:
        center = (int(torch.randint(rows, (1,), generator=generator)),
                  int(torch.randint(cols, (1,), generator=generator)))
    cr, cc = center
    r1, r2 = min(max(cr - cut_r // 2, 0), rows), min(max(cr + cut_r // 2, 0), rows)
    c1, c2 = min(max(cc - cut_c // 2, 0), cols), min(max(cc + cut_c // 2, 0), cols)
    return r1, c1, r2, c2


def sample_beta(alpha: float, generator: Optional[torch.Generator] = None) -> float:
    """One draw of Beta(alpha, alpha): torch's global RNG, or a numpy draw seeded from ``generator``."""
    if generator is None:
        return float(torch.distributions.Beta(float(alpha), float(alpha)).sample())
    seed = int(torch.randint(2 ** 62, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def sample_token_box(grid_size: Sequence[int], beta: float = 1.0,
                     generator: Optional[torch.Generator] = None) -> Box:
    """lam ~ Beta(beta, beta) (official: 1.0, i.e. uniform), then ``rand_token_box``."""
    return rand_token_box(grid_size, sample_beta(beta, generator), generator)


def swap_box_with_flipped(x: torch.Tensor, box: Box, dims: Tuple[int, int] = (2, 3)) -> torch.Tensor:
    """Copy of ``x`` whose box region (on spatial ``dims``) comes from ``x.flip(0)``.

    Applied to the stem output it mixes sample b with sample B-1-b inside the box; applied
    again to the dense outputs it moves every prediction back to the sample whose image
    content produced it (the official "recover the mixed part").
    """
    r1, c1, r2, c2 = box
    index = [slice(None)] * x.ndim
    index[dims[0]] = slice(r1, r2)
    index[dims[1]] = slice(c1, c2)
    index = tuple(index)
    out = x.clone()
    out[index] = x.flip(0)[index]
    return out


def box_lambda(box: Box, num_tokens: int) -> float:
    """Share of tokens outside the box: the weight of a sample's own class target."""
    r1, c1, r2, c2 = box
    return 1. - (r2 - r1) * (c2 - c1) / float(num_tokens)


# --------------------------------------------------------------------------------------
# Dense score-map targets
# --------------------------------------------------------------------------------------
def topk_to_dense(score_topk: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[B, 2, k, H, W]`` (top-k logits, class indices) -> dense logits ``[B, K, H, W]``.

    Classes outside the top-k get logit 0, not -inf, as in the official
    ``get_featuremaps`` (so after the softmax they keep some probability mass).
    Also accepts one map ``[2, k, H, W]`` (returns ``[K, H, W]``).
    """
    single = score_topk.ndim == 4
    if single:
        score_topk = score_topk[None]
    if score_topk.ndim != 5 or score_topk.shape[1] != 2:
        raise ValueError(f'score map must be [B, 2, k, H, W] (values, indices); got '
                         f'{tuple(score_topk.shape)}')
    values = score_topk[:, 0].float()
    index = score_topk[:, 1].round().long()
    if index.min() < 0 or index.max() >= num_classes:
        raise ValueError(f'score map holds class indices in [{int(index.min())}, '
                         f'{int(index.max())}], outside [0, {num_classes})')
    B, _, H, W = values.shape
    dense = values.new_zeros(B, num_classes, H, W)
    dense.scatter_(1, index, values)
    return dense[0] if single else dense


def hflip_score_map(score_map: torch.Tensor) -> torch.Tensor:
    """Flip a score map (top-k ``[.., H, W]`` or dense) left-right, with the image."""
    return score_map.flip(-1)


def _roi_align(dense: torch.Tensor, boxes: torch.Tensor, size) -> torch.Tensor:
    from torchvision.ops import roi_align
    rois = torch.cat([torch.arange(dense.shape[0], dtype=boxes.dtype,
                                   device=boxes.device)[:, None], boxes], 1)
    # aligned=False and the -0.5 shift in the caller: the official (ReLabel) convention
    return roi_align(dense, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1,
                     aligned=False)


def crop_token_labels(dense_logits: torch.Tensor, crop_boxes: torch.Tensor,
                      label_size: Union[int, Sequence[int]] = 14,
                      official_transposed_crop: bool = False) -> torch.Tensor:
    """Soft labels of a crop: ``[B, K, 1 + h*w]``, crop-level label first, then tokens.

    Args:
        dense_logits: ``[B, K, H, W]`` logit maps of the full (flipped, augmented) images.
        crop_boxes: ``[B, 4]`` crop boxes ``(x1, y1, x2, y2)`` as fractions of the image
            width / height (``x`` = columns).
        label_size: token grid ``h`` (= ``w``) or ``(h, w)``; tokens are row-major.
        official_transposed_crop: reproduce the official box transposition (module doc).

    The logits are pooled by ``roi_align`` (average of bilinear samples), then a softmax
    over classes, as the official ``get_label`` does.
    """
    if dense_logits.ndim != 4 or crop_boxes.shape != (dense_logits.shape[0], 4):
        raise ValueError(f'expected logits [B, K, H, W] and boxes [B, 4]; got '
                         f'{tuple(dense_logits.shape)} and {tuple(crop_boxes.shape)}')
    size = (label_size, label_size) if isinstance(label_size, int) else tuple(label_size)
    H, W = dense_logits.shape[-2:]
    boxes = crop_boxes.float()
    if official_transposed_crop:
        # official: (top, left, bottom, right) * map width, read by roi_align as (x1, y1, x2, y2)
        boxes = boxes[:, [1, 0, 3, 2]] * W
    else:
        boxes = boxes * boxes.new_tensor([W, H, W, H])
    boxes = boxes - 0.5
    tokens = _roi_align(dense_logits.float(), boxes, size).flatten(2)
    crop = _roi_align(dense_logits.float(), boxes, (1, 1)).flatten(2)
    return torch.cat([crop, tokens], 2).softmax(1)


def smooth(probs: torch.Tensor, smoothing: float, num_classes: int) -> torch.Tensor:
    """Official label smoothing of (soft) labels: ``p * (1 - s + s/K) + s/K`` (dim 1 = classes).

    Applied to a one-hot this is the usual smoothing; a soft label then sums to 1 + s/K.
    """
    off = smoothing / num_classes
    return probs * (1. - smoothing + off) + off


def token_label_target(score_topk: torch.Tensor, crop_boxes: torch.Tensor,
                       labels: Optional[torch.Tensor], num_classes: int,
                       label_size: Union[int, Sequence[int]] = 14, smoothing: float = 0.1,
                       official_transposed_crop: bool = False) -> torch.Tensor:
    """Full token-labeling target ``[B, K, 2 + N]``, as the official ``mixup_target``.

    Column 0: smoothed one-hot of ``labels`` (on ``1 - s + s/K``, off ``s/K``; zeros when
    ``labels`` is None); column 1: the crop-level soft label; columns 2..: the N token labels
    (row-major), soft labels smoothed by ``smooth``.
    ``score_topk`` ``[B, 2, k, H, W]`` must already be flipped with the image.
    """
    dense = topk_to_dense(score_topk, num_classes)
    soft = smooth(crop_token_labels(dense, crop_boxes, label_size, official_transposed_crop),
                  smoothing, num_classes)
    B = soft.shape[0]
    if labels is None:
        gt = soft.new_zeros(B, num_classes, 1)
    else:
        # one-hot with on = 1 - s + s/K, off = s/K (sums to 1), as the official one_hot
        one_hot = F.one_hot(labels.long().view(B), num_classes).to(soft)
        gt = (one_hot * (1. - smoothing) + smoothing / num_classes)[:, :, None]
    return torch.cat([gt, soft], 2)


# --------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------
def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_c target_c * log_softmax(logits)_c``."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


class TokenLabelCrossEntropy(nn.Module):
    """Token labeling loss: ``cls_weight * CE(cls, t_cls) + dense_weight * CE(tokens, t_tok)``.

    ``outputs`` is the training output of a token-labeling model: ``(cls_logits [B, K],
    aux_logits [B, N, K], box)``, with the aux logits already swapped back after MixToken.
    ``target`` is one of

    * ``[B, K, 2 + N]`` from ``token_label_target``: the class target is column 1 (the
      crop-level annotator label, as in the official code; with ``ground_truth=True`` it is
      mixed with column 0 by the official rule: 50/50 when both agree on the top class,
      90 % annotator / 10 % ground truth otherwise) and the token targets are columns 2..;
    * ``[B, K]`` soft / one-hot targets: used for the class and for every token;
    * ``[B]`` class indices (one-hot).

    MixToken: with ``lam = 1 - box area / N`` < 1 the class target becomes
    ``lam * t + (1 - lam) * t.flip(0)``; the token targets are not mixed. The token term
    averages over all B*N tokens. ``dense_weight`` defaults to 0.5 (the paper's beta);
    the official script used 1.0.
    """

    def __init__(self, cls_weight: float = 1.0, dense_weight: float = 0.5,
                 ground_truth: bool = False):
        super().__init__()
        if cls_weight < 0 or dense_weight < 0 or cls_weight + dense_weight <= 0:
            raise ValueError(f'cls_weight={cls_weight} and dense_weight={dense_weight}: '
                             'both must be >= 0 and one of them > 0')
        self.cls_weight = cls_weight
        self.dense_weight = dense_weight
        self.ground_truth = ground_truth

    def forward(self, outputs, target: torch.Tensor) -> torch.Tensor:
        if not (isinstance(outputs, (tuple, list)) and len(outputs) == 3):
            raise TypeError('TokenLabelCrossEntropy needs the training output (cls_logits, '
                            'aux_logits, box) of a token-labeling model (return_dense=True)')
        cls_logits, aux_logits, box = outputs
        B, N, K = aux_logits.shape
        if target.ndim == 1:
            target = F.one_hot(target.long(), K).to(cls_logits.dtype)
        if target.ndim == 2:
            t_cls = target
            t_tok = target[:, None, :].expand(B, N, K).reshape(B * N, K)
        elif target.ndim == 3:
            if target.shape != (B, K, N + 2):
                raise ValueError(f'token-label target must be [B, K, 2 + N] = '
                                 f'{[B, K, N + 2]}; got {list(target.shape)}')
            t_cls = target[:, :, 1]
            if self.ground_truth:
                gt = target[:, :, 0]
                agree = (gt.argmax(-1) == t_cls.argmax(-1)).to(t_cls.dtype)
                ratio = (0.9 - 0.4 * agree)[:, None]
                t_cls = ratio * t_cls + (1. - ratio) * gt
            t_tok = target[:, :, 2:].transpose(1, 2).reshape(B * N, K)
        else:
            raise ValueError(f'target must be [B], [B, K] or [B, K, 2 + N]; got '
                             f'{list(target.shape)}')
        lam = box_lambda(box, N)
        if lam < 1:
            t_cls = lam * t_cls + (1. - lam) * t_cls.flip(0)
        loss = 0.
        if self.cls_weight:
            loss = loss + self.cls_weight * soft_cross_entropy(cls_logits, t_cls)
        if self.dense_weight:
            loss = loss + self.dense_weight * soft_cross_entropy(aux_logits.reshape(B * N, K), t_tok)
        return loss
