"""Linear algebra of the analysis: affinity spectra, significant eigenvalues, clustering, perturbation."""
import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.metrics import adjusted_rand_score

from fan_mm.analysis.spectral import (affinity, affinity_eigenvalues, align_labels, count_significant,
                                      label_mapping, normalize_tokens, perturbation, relabel_by_size,
                                      significant_eigenvalues, spectral_clustering, upsample_labels)


def planted_tokens(sizes, channels=16, spread=0.0, scale=8.0, seed=0):
    """Tokens of ``len(sizes)`` groups: group g puts its mass on its own channels (softmax -> near one-hot)."""
    g = torch.Generator().manual_seed(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    z = torch.zeros(len(labels), channels, dtype=torch.float64)
    per = channels // len(sizes)
    for i, lab in enumerate(labels):
        z[i, lab * per:(lab + 1) * per] = scale
    z += spread * torch.randn(z.shape, generator=g, dtype=torch.float64)
    perm = torch.randperm(len(labels), generator=g)
    return z[perm], labels[perm.numpy()]


def reference_sym_spectrum(tokens, norm):
    """D^-1/2 A D^-1/2 with scipy's dense symmetric eigensolver, descending."""
    a = affinity(tokens, norm).numpy()
    d = 1 / np.sqrt(a.sum(1))
    return scipy.linalg.eigh(a * d[:, None] * d[None, :], eigvals_only=True)[::-1]


@pytest.mark.parametrize('k', [1, 2, 3, 5])
def test_block_diagonal_affinity_has_one_unit_eigenvalue_per_block(k):
    # exact block-diagonal affinity: one-hot-per-group non-negative tokens, raw (norm='none')
    sizes = [3 + 2 * i for i in range(k)]  # unequal blocks: the count must not depend on block size
    labels = np.repeat(np.arange(k), sizes)
    tokens = torch.zeros(len(labels), 8, dtype=torch.float64)
    tokens[np.arange(len(labels)), labels] = 1.0
    a = affinity(tokens, 'none')
    assert torch.equal(a > 0, torch.from_numpy(labels[:, None] == labels[None, :]))  # really block-diagonal
    ev = affinity_eigenvalues(tokens, 'none', 'sym')
    assert ev.shape == (len(labels),)
    assert torch.allclose(ev[:k], torch.ones(k, dtype=torch.float64))
    assert ev[k:].abs().max() < 1e-9
    for threshold in (0.05, 0.5, 0.99):
        assert int(count_significant(ev, threshold)) == k
    # 'max' divides by the largest eigenvalue (the largest block): small blocks stay above a low threshold
    ev_max = affinity_eigenvalues(tokens, 'none', 'max')
    assert np.allclose(sorted(ev_max[:k].numpy()), sorted(np.array(sizes) / max(sizes)))


@pytest.mark.parametrize('k', [2, 4])
def test_softmax_tokens_of_planted_groups_give_k_significant_eigenvalues(k):
    tokens, _ = planted_tokens([10] * k, channels=16, spread=0.3)
    assert int(significant_eigenvalues(tokens, threshold=0.5)) == k
    # batched call gives the same count for each image
    batch = torch.stack([tokens, planted_tokens([10] * k, channels=16, spread=0.3, seed=1)[0]])
    assert significant_eigenvalues(batch, threshold=0.5).tolist() == [k, k]


@pytest.mark.parametrize('norm', ['softmax', 'l2', 'none'])
@pytest.mark.parametrize('n,c', [(30, 8), (12, 40)])  # C < N (factorised path) and C > N
def test_sym_spectrum_matches_dense_eigendecomposition(norm, n, c):
    tokens = torch.randn(n, c, generator=torch.Generator().manual_seed(3), dtype=torch.float64).abs()
    ev = affinity_eigenvalues(tokens, norm, 'sym').numpy()
    np.testing.assert_allclose(ev, reference_sym_spectrum(tokens, norm), atol=1e-10)
    assert ev[0] == pytest.approx(1.0)  # non-negative affinity: top eigenvalue of D^-1/2 A D^-1/2 is 1
    assert ev.min() > -1e-10 and ev.max() < 1 + 1e-10


def test_max_spectrum_is_affinity_eigenvalues_over_largest():
    tokens = torch.randn(25, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = affinity(tokens, 'softmax').numpy()
    ref = scipy.linalg.eigh(a, eigvals_only=True)[::-1]
    np.testing.assert_allclose(affinity_eigenvalues(tokens, 'softmax', 'max').numpy(), ref / ref[0], atol=1e-10)


def test_softmax_is_over_channels():
    p = normalize_tokens(torch.randn(2, 5, 7), 'softmax')
    assert torch.allclose(p.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match='token normalisation'):
        normalize_tokens(torch.randn(3, 3), 'minmax')
    with pytest.raises(ValueError, match='spectrum'):
        affinity_eigenvalues(torch.randn(3, 3), 'softmax', 'rw')


@pytest.mark.parametrize('sizes', [[20, 12], [15, 10, 8]])
def test_spectral_clustering_recovers_planted_clusters(sizes):
    tokens, labels = planted_tokens(sizes, channels=12, spread=0.5)
    pred = spectral_clustering(tokens.float(), len(sizes))
    assert adjusted_rand_score(labels, pred) == 1.0
    # label 0 is the largest group
    assert np.bincount(pred).tolist() == sorted(sizes, reverse=True)


def test_spectral_clustering_rejects_bad_cluster_count():
    tokens, _ = planted_tokens([4, 4])
    with pytest.raises(ValueError, match='num_clusters'):
        spectral_clustering(tokens, 9)
    assert spectral_clustering(tokens, 1).tolist() == [0] * 8


def test_label_alignment_undoes_a_permutation():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 4, size=(6, 7))
    perm = np.array([2, 0, 3, 1])
    assert np.array_equal(align_labels(perm[ref], ref, 4), ref)
    assert np.array_equal(label_mapping(perm[ref], ref, 4)[perm], np.arange(4))
    assert np.bincount(relabel_by_size(np.array([2, 2, 2, 0, 1, 1]), 3)).tolist() == [3, 2, 1]


def test_upsample_labels_is_nearest_on_the_grid():
    lab = np.arange(6)
    up = upsample_labels(lab, (2, 3), (4, 6))
    assert up.shape == (4, 6)
    assert np.array_equal(up, np.kron(lab.reshape(2, 3), np.ones((2, 2), dtype=int)))


def test_perturbation_is_relative_frobenius_norm():
    clean = torch.randn(3, 10, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(perturbation(clean, clean), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(perturbation(clean, 1.1 * clean), torch.full((3,), 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match='differ in shape'):
        perturbation(clean, clean[:, :5])
