"""Token labeling and MixToken arithmetic on small hand-computed cases."""
import math

import pytest
import torch

from fan_mm.models.token_labeling import (TokenLabelCrossEntropy, box_lambda, crop_token_labels,
                                          hflip_score_map, rand_token_box, sample_token_box,
                                          smooth, swap_box_with_flipped, token_label_target,
                                          topk_to_dense)

LN = math.log


# ------------------------------------------------------------------------------------------
# MixToken
# ------------------------------------------------------------------------------------------
def test_rand_token_box_by_hand():
    # lam 0.75 on 14 x 14: side int(14 * 0.5) = 7 -> half 3 -> [c - 3, c + 3)
    assert rand_token_box((14, 14), 0.75, center=(5, 7)) == (2, 4, 8, 10)
    # clipped at the border: rows [2, 8), cols [10, 16) -> [10, 14)
    assert rand_token_box((14, 14), 0.75, center=(5, 13)) == (2, 10, 8, 14)
    # non-square grid: rows 6 * 0.5 = 3 -> half 1, cols 10 * 0.5 = 5 -> half 2
    assert rand_token_box((6, 10), 0.75, center=(0, 5)) == (0, 3, 1, 7)
    # lam 1: empty box
    r1, c1, r2, c2 = rand_token_box((14, 14), 1.0, center=(3, 3))
    assert (r2 - r1) * (c2 - c1) == 0


def test_box_lambda_by_hand():
    assert box_lambda((2, 10, 8, 14), 196) == pytest.approx(1 - 24 / 196)
    assert box_lambda((0, 0, 0, 0), 196) == 1.0
    assert box_lambda((0, 0, 4, 4), 16) == 0.0


def test_sample_token_box_is_seeded_and_in_range():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    boxes = [sample_token_box((14, 14), 1.0, g1) for _ in range(50)]
    assert boxes == [sample_token_box((14, 14), 1.0, g2) for _ in range(50)]
    for r1, c1, r2, c2 in boxes:
        assert 0 <= r1 <= r2 <= 14 and 0 <= c1 <= c2 <= 14
        # unclipped sides are even (//2 on both sides)
        if 0 < r1 and r2 < 14:
            assert (r2 - r1) % 2 == 0
    assert len(set(boxes)) > 10


def test_swap_box_with_flipped_by_hand():
    # batch of 3 (odd: the middle sample swaps with itself), one channel, 2 x 3 grid
    x = torch.arange(3 * 6, dtype=torch.float).reshape(3, 1, 2, 3)
    out = swap_box_with_flipped(x, (0, 1, 1, 3), dims=(2, 3))  # row 0, cols 1..2
    assert out[0, 0].tolist() == [[0, 13, 14], [3, 4, 5]]
    assert out[1, 0].tolist() == [[6, 7, 8], [9, 10, 11]]
    assert out[2, 0].tolist() == [[12, 1, 2], [15, 16, 17]]
    # applying it twice restores the input (outputs are swapped back this way)
    assert torch.equal(swap_box_with_flipped(out, (0, 1, 1, 3), dims=(2, 3)), x)
    # channels-last layout (aux logits [B, h, w, K])
    nhwc = x.permute(0, 2, 3, 1)
    assert torch.equal(swap_box_with_flipped(nhwc, (0, 1, 1, 3), dims=(1, 2)),
                       out.permute(0, 2, 3, 1))


# ------------------------------------------------------------------------------------------
# Loss
# ------------------------------------------------------------------------------------------
def _outputs(box):
    # cls: sample 0 p = [1/4, 3/4], sample 1 p = [3/4, 1/4]; every token p = [1/4, 3/4]
    cls = torch.tensor([[0., LN(3)], [LN(3), 0.]])
    aux = torch.tensor([0., LN(3)]).expand(2, 2, 2).clone()  # B=2, N=2, K=2
    return cls, aux, box


def _target():
    # [B, K, 2 + N]: col 0 ground truth, col 1 crop label, cols 2.. token labels
    t = torch.zeros(2, 2, 4)
    t[0, :, 0] = torch.tensor([1., 0.])
    t[1, :, 0] = torch.tensor([1., 0.])
    t[0, :, 1] = torch.tensor([1., 0.])
    t[1, :, 1] = torch.tensor([0., 1.])
    t[0, :, 2], t[0, :, 3] = torch.tensor([1., 0.]), torch.tensor([0., 1.])
    t[1, :, 2], t[1, :, 3] = torch.tensor([0., 1.]), torch.tensor([0., 1.])
    return t


def test_loss_without_mixtoken_by_hand():
    # cls: both samples put 1/4 on their target -> ln 4 each
    # tokens: targets [1,0] [0,1] [0,1] [0,1] under p = [1/4, 3/4] -> ln4, 3 x ln(4/3)
    tokens = (LN(4) + 3 * LN(4 / 3)) / 4
    loss = TokenLabelCrossEntropy()(_outputs((0, 0, 0, 0)), _target())
    assert loss.item() == pytest.approx(LN(4) + 0.5 * tokens, rel=1e-6)  # beta 0.5 default
    official = TokenLabelCrossEntropy(dense_weight=1.0)(_outputs((0, 0, 0, 0)), _target())
    assert official.item() == pytest.approx(LN(4) + tokens, rel=1e-6)
    cls_only = TokenLabelCrossEntropy(dense_weight=0.)(_outputs((0, 0, 0, 0)), _target())
    assert cls_only.item() == pytest.approx(LN(4), rel=1e-6)


def test_loss_mixtoken_lambda_correction_by_hand():
    # box of 1 token out of N = 2 -> lam = 0.5: class targets become [.5, .5] for both;
    # CE = -(.5 ln 1/4 + .5 ln 3/4) = .5 ln(16/3). Token targets are not mixed.
    tokens = (LN(4) + 3 * LN(4 / 3)) / 4
    loss = TokenLabelCrossEntropy()(_outputs((0, 0, 1, 1)), _target())
    assert loss.item() == pytest.approx(0.5 * LN(16 / 3) + 0.5 * tokens, rel=1e-6)


def test_loss_ground_truth_rule_by_hand():
    # sample 0: GT and crop label agree (class 0) -> 50/50 mix = [1, 0] -> CE ln 4
    # sample 1: they disagree -> 0.9 crop [0,1] + 0.1 GT [1,0] = [.1, .9] under p=[3/4,1/4]
    #           -> -(.1 ln 3/4 + .9 ln 1/4)
    loss = TokenLabelCrossEntropy(dense_weight=0., ground_truth=True)(
        _outputs((0, 0, 0, 0)), _target())
    expected = (LN(4) - (0.1 * LN(3 / 4) + 0.9 * LN(1 / 4))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_loss_with_plain_targets():
    # class indices: the class target is also every token's target
    loss = TokenLabelCrossEntropy(dense_weight=1.0)(_outputs((0, 0, 0, 0)),
                                                    torch.tensor([1, 0]))
    # cls: s0 target 1 p 3/4 -> ln 4/3; s1 target 0 p 3/4 -> ln 4/3.
    # tokens (p = [1/4, 3/4]): s0 target 1 -> ln 4/3 (x2); s1 target 0 -> ln 4 (x2)
    assert loss.item() == pytest.approx(LN(4 / 3) + (LN(4 / 3) + LN(4)) / 2, rel=1e-6)


def test_loss_rejects_bad_input():
    with pytest.raises(TypeError, match='training output'):
        TokenLabelCrossEntropy()(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r'\[B, K, 2 \+ N\]'):
        TokenLabelCrossEntropy()(_outputs((0, 0, 0, 0)), torch.zeros(2, 2, 5))
    with pytest.raises(ValueError, match='dense_weight'):
        TokenLabelCrossEntropy(cls_weight=0., dense_weight=0.)


# ------------------------------------------------------------------------------------------
# Dense targets
# ------------------------------------------------------------------------------------------
def test_topk_to_dense_by_hand():
    # one image, top-2 on a 1 x 2 map, 4 classes
    values = torch.tensor([[[5., 3.]], [[2., 1.]]])       # [k=2, H=1, W=2]
    index = torch.tensor([[[3., 0.]], [[1., 2.]]])
    dense = topk_to_dense(torch.stack([values, index]), 4)  # [K, H, W]
    assert dense[:, 0, 0].tolist() == [0., 2., 0., 5.]
    assert dense[:, 0, 1].tolist() == [3., 0., 1., 0.]    # the other classes get 0, not -inf
    with pytest.raises(ValueError, match='outside'):
        topk_to_dense(torch.stack([values, index + 2]), 4)


def _position_map(size=18):
    """Dense logits whose class ``r * size + c`` peaks at cell (r, c)."""
    k = size * size
    dense = torch.zeros(1, k, size, size)
    for r in range(size):
        for c in range(size):
            dense[0, r * size + c, r, c] = 20.
    return dense


def test_crop_token_labels_geometry_and_official_transposition():
    """Top-right crop of an image (x 0.5..1, y 0..0.5) on an 18 x 18 map with 9 x 9 tokens:
    token (i, j) samples exactly cell (i, 9 + j); the official transposition samples
    cell (9 + i, j) instead (reference notes 3.5)."""
    dense = _position_map()
    box = torch.tensor([[0.5, 0.0, 1.0, 0.5]])  # (x1, y1, x2, y2) fractions
    labels = crop_token_labels(dense, box, label_size=9)
    assert labels.shape == (1, 324, 82)
    assert torch.allclose(labels.sum(1), torch.ones(1, 82))
    top = labels[0, :, 1:].argmax(0).reshape(9, 9)
    rows, cols = torch.meshgrid(torch.arange(9), torch.arange(9), indexing='ij')
    assert torch.equal(top, rows * 18 + 9 + cols)
    official = crop_token_labels(dense, box, label_size=9, official_transposed_crop=True)
    top = official[0, :, 1:].argmax(0).reshape(9, 9)
    assert torch.equal(top, (9 + rows) * 18 + cols)
    # the crop-level label (column 0) spreads over exactly the 81 cells of the crop
    crop = labels[0, :, 0].reshape(18, 18)
    assert torch.allclose(crop[:9, 9:], crop[0, 9].expand(9, 9))
    # softmax of the mean logit 20/81 in the crop against 0 outside
    assert torch.allclose(crop[0, 9] / crop[9, 0], torch.tensor(math.exp(20 / 81)))
    assert torch.allclose(crop[9:, :], crop[9, 0].expand(9, 18))


def test_flip_score_map_with_the_image():
    """Flipping the image (and its map) and mirroring the crop box mirrors the token labels."""
    torch.manual_seed(0)
    dense = torch.randn(2, 7, 12, 12)
    box = torch.tensor([[0.1, 0.2, 0.6, 0.9], [0.3, 0.0, 1.0, 0.5]])
    mirrored = torch.stack([1 - box[:, 2], box[:, 1], 1 - box[:, 0], box[:, 3]], 1)
    a = crop_token_labels(dense, box, label_size=4)
    b = crop_token_labels(hflip_score_map(dense), mirrored, label_size=4)
    assert torch.allclose(a[:, :, 0], b[:, :, 0], atol=1e-5)
    flip_tokens = b[:, :, 1:].reshape(2, 7, 4, 4).flip(-1).reshape(2, 7, 16)
    assert torch.allclose(a[:, :, 1:], flip_tokens, atol=1e-5)
    # the top-k layout [B, 2, k, H, W] flips along W too
    topk = torch.stack([torch.rand(2, 3, 5, 6), torch.randint(0, 7, (2, 3, 5, 6)).float()], 1)
    assert torch.equal(topk_to_dense(hflip_score_map(topk), 7), topk_to_dense(topk, 7).flip(-1))


def test_token_label_target_layout_and_smoothing():
    # uniform map of 4 classes -> every soft label is uniform; smoothing keeps it at
    # 1/4 * (1 - s + s/K) + s/K; the ground-truth column is a smoothed one-hot
    topk = torch.zeros(2, 2, 1, 3, 3)  # logits 0, class index 0 everywhere
    target = token_label_target(topk, torch.tensor([[0., 0., 1., 1.]] * 2),
                                torch.tensor([2, 1]), num_classes=4, label_size=2, smoothing=0.1)
    assert target.shape == (2, 4, 2 + 4)
    off = 0.1 / 4
    assert torch.allclose(target[:, :, 1:], torch.full((2, 4, 5), 0.25 * (1 - 0.1 + off) + off))
    assert target[0, :, 0].tolist() == pytest.approx([off, off, 1 - 0.1 + off, off])
    assert target[:, :, 0].sum(1).tolist() == pytest.approx([1., 1.])
    # soft labels: p * (1 - s + s/K) + s/K (official; sums to 1 + s/K)
    assert smooth(torch.tensor([[1., 0.]]), 0.2, 2).tolist()[0] == pytest.approx([1.0, 0.1])
