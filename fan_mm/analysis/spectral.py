"""Token affinities, their significant eigenvalues, spectral clustering and noise perturbation.

Definitions (FAN paper, Sec. 2.2 and App. A.6; where the paper gives no number, the choice is ours and named):

- Token normalisation (App. A.6): ``softmax`` over the channels of each token, ``p_i = softmax(z_i)``. The
  alternatives ``l2`` (unit-norm tokens) and ``none`` (raw tokens, Sec. 2.2's ``S_ij = z_i^T z_j``) are options.
- Affinity: the self-correlation of the normalised tokens, ``A = P P^T`` (``N x N``). With softmax tokens all
  entries are positive; with ``l2`` / ``none`` negative entries are set to 0 before any graph normalisation
  (spectral clustering needs a non-negative affinity).
- Significant eigenvalues (Sec. 2.2, "larger than a predefined threshold"; the paper gives no threshold):
  ``spectrum='sym'`` (default) uses the eigenvalues of the symmetrically normalised affinity
  ``D^-1/2 A D^-1/2`` with ``D = diag(A 1)`` (Ng, Jordan & Weiss 2002), which lie in [-1, 1] with the top one
  equal to 1; eigenvalue 1 has the multiplicity of the connected components, so the count of eigenvalues
  above ``threshold`` estimates the number of clusters (Zelnik-Manor & Perona 2004). The default threshold,
  ``DEFAULT_THRESHOLD`` = 0.1, is ours; the tools and docs/analysis.md use the same one.
  ``spectrum='max'`` uses the eigenvalues of ``A`` divided by the largest one.
- Spectral clustering (App. A.6): scikit-learn's :class:`~sklearn.cluster.SpectralClustering` on the
  precomputed affinity ``A`` (normalised Laplacian embedding, then k-means).
- Perturbation (Sec. 2.2, "normalized feature norm"): ``||Z(x + n) - Z(x)||_F / ||Z(x)||_F`` per image on the
  raw spatial tokens of a block, ``n`` Gaussian noise added to the input pixels (see ``noise_decay``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

TOKEN_NORMS = ('softmax', 'l2', 'none')
SPECTRA = ('sym', 'max')
# an eigenvalue above this is significant, unless a caller says otherwise (our choice: the paper gives none)
DEFAULT_THRESHOLD = 0.1


def normalize_tokens(tokens: torch.Tensor, norm: str = 'softmax') -> torch.Tensor:
    """Normalise each token (last dim = channels): ``softmax``, ``l2`` or ``none``; float64."""
    if norm not in TOKEN_NORMS:
        raise ValueError(f'token normalisation {norm!r} is not one of {TOKEN_NORMS}')
    z = tokens.double()
    if norm == 'softmax':
        return torch.softmax(z, dim=-1)
    if norm == 'l2':
        return torch.nn.functional.normalize(z, dim=-1)
    return z


def affinity(tokens: torch.Tensor, norm: str = 'softmax', clip_negative: bool = True) -> torch.Tensor:
    """Token affinity ``A = P P^T`` of normalised tokens (``[B x] N x C`` -> ``[B x] N x N``), float64."""
    p = normalize_tokens(tokens, norm)
    a = p @ p.transpose(-1, -2)
    if clip_negative:
        a = a.clamp_min(0)
    return a


def affinity_eigenvalues(tokens: torch.Tensor, norm: str = 'softmax', spectrum: str = 'sym') -> torch.Tensor:
    """Eigenvalues of the token affinity, descending (``[B x] N x C`` -> ``[B x] N``), float64.

    ``sym``: eigenvalues of ``D^-1/2 A D^-1/2``; ``max``: eigenvalues of ``A`` over the largest one.
    With softmax tokens ``A = P P^T >= 0`` and the spectrum comes from the singular values of the ``N x C``
    matrix ``D^-1/2 P`` (``lambda = sigma^2``, zero-padded to ``N``), which is cheaper than an ``N x N``
    eigendecomposition when ``C < N``; otherwise ``A`` is clipped at 0 and decomposed with ``eigvalsh``.
    """
    if spectrum not in SPECTRA:
        raise ValueError(f'spectrum {spectrum!r} is not one of {SPECTRA}')
    batched = tokens.ndim == 3
    if not batched:
        tokens = tokens[None]
    p = normalize_tokens(tokens, norm)
    n = p.shape[-2]
    if norm == 'softmax':
        if spectrum == 'sym':
            deg = p @ p.sum(dim=-2, keepdim=True).transpose(-1, -2)  # A 1 = P (P^T 1), B x N x 1
            p = p / deg.sqrt()
        ev = torch.linalg.svdvals(p) ** 2
        if ev.shape[-1] < n:
            ev = torch.cat([ev, ev.new_zeros(ev.shape[:-1] + (n - ev.shape[-1],))], dim=-1)
    else:
        a = (p @ p.transpose(-1, -2)).clamp_min(0)
        if spectrum == 'sym':
            d = a.sum(-1).clamp_min(torch.finfo(a.dtype).tiny).rsqrt()
            a = a * d[..., :, None] * d[..., None, :]
        ev = torch.linalg.eigvalsh(a).flip(-1)
    if spectrum == 'max':
        ev = ev / ev[..., :1].clamp_min(torch.finfo(ev.dtype).tiny)
    return ev if batched else ev[0]


def count_significant(eigenvalues: torch.Tensor, threshold: float) -> torch.Tensor:
    """Number of eigenvalues strictly above ``threshold`` (last dim)."""
    return (eigenvalues > threshold).sum(-1)


def significant_eigenvalues(tokens: torch.Tensor, threshold: float = DEFAULT_THRESHOLD, norm: str = 'softmax',
                            spectrum: str = 'sym') -> torch.Tensor:
    """Number of significant eigenvalues of the token affinity, per image (``[B x] N x C`` -> ``[B]``)."""
    return count_significant(affinity_eigenvalues(tokens, norm, spectrum), threshold)


def perturbation(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Normalised feature perturbation ``||noisy - clean||_F / ||clean||_F`` per image (dims after the first)."""
    if clean.shape != noisy.shape:
        raise ValueError(f'clean and noisy features differ in shape: {tuple(clean.shape)} vs {tuple(noisy.shape)}')
    c = clean.double().flatten(1)
    d = (noisy.double().flatten(1) - c).norm(dim=1)
    return d / c.norm(dim=1).clamp_min(torch.finfo(torch.float64).tiny)


def spectral_clustering(tokens: torch.Tensor, num_clusters: int, norm: str = 'softmax',
                        seed: int = 0) -> np.ndarray:
    """Cluster labels (``N``) of one image's tokens (``N x C``) by spectral clustering of their affinity.

    scikit-learn's ``SpectralClustering(affinity='precomputed', assign_labels='kmeans')`` with a fixed seed.
    Labels are renumbered by decreasing cluster size, so label 0 is the largest group.
    """
    from sklearn.cluster import SpectralClustering
    if tokens.ndim != 2:
        raise ValueError(f'expected N x C tokens of one image, got shape {tuple(tokens.shape)}')
    n = tokens.shape[0]
    if not 1 <= num_clusters <= n:
        raise ValueError(f'num_clusters must be in 1..{n} (number of tokens), got {num_clusters}')
    if num_clusters == 1:
        return np.zeros(n, dtype=np.int64)
    a = affinity(tokens, norm).cpu().numpy()
    sc = SpectralClustering(n_clusters=num_clusters, affinity='precomputed', assign_labels='kmeans',
                            random_state=seed, n_init=10)
    labels = sc.fit_predict(a)
    return relabel_by_size(labels, num_clusters)


def relabel_by_size(labels: np.ndarray, num_clusters: int) -> np.ndarray:
    """Renumber labels so that 0 is the largest cluster, 1 the next, ... (ties by old label)."""
    counts = np.bincount(labels, minlength=num_clusters)
    order = np.argsort(-counts, kind='stable')
    mapping = np.empty_like(order)
    mapping[order] = np.arange(num_clusters)
    return mapping[labels]


def label_mapping(labels: np.ndarray, reference: np.ndarray, num_clusters: int) -> np.ndarray:
    """The permutation ``m`` (``m[old] = new``) that makes ``labels`` best overlap ``reference``.

    Hungarian matching on the overlap counts; both are label maps of the same shape (resample to a common
    grid first). Used to give the best-overlapping groups of different panels the same colour.
    """
    from scipy.optimize import linear_sum_assignment
    if labels.shape != reference.shape:
        raise ValueError(f'label maps differ in shape: {labels.shape} vs {reference.shape}')
    overlap = np.zeros((num_clusters, num_clusters), dtype=np.int64)
    np.add.at(overlap, (labels.ravel(), reference.ravel()), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.arange(num_clusters)
    mapping[rows] = cols
    return mapping


def align_labels(labels: np.ndarray, reference: np.ndarray, num_clusters: int) -> np.ndarray:
    """``labels`` renumbered to best overlap ``reference`` (see :func:`label_mapping`)."""
    return label_mapping(labels, reference, num_clusters)[labels]


def upsample_labels(labels: np.ndarray, grid: Tuple[int, int], size: Tuple[int, int]) -> np.ndarray:
    """A token label vector on ``grid`` -> an ``size`` (H, W) label map, nearest neighbour."""
    h, w = grid
    lab = np.asarray(labels).reshape(h, w)
    H, W = size
    rows = np.minimum((np.arange(H) * h) // H, h - 1)
    cols = np.minimum((np.arange(W) * w) // W, w - 1)
    return lab[rows][:, cols]


def add_gaussian_noise(pixels: torch.Tensor, sigma: float, generator: Optional[torch.Generator] = None,
                       clip: bool = False) -> torch.Tensor:
    """``pixels`` (in [0, 1]) plus ``N(0, sigma^2)`` noise drawn on the CPU from ``generator``."""
    if sigma < 0:
        raise ValueError(f'noise strength sigma must be >= 0, got {sigma}')
    noise = torch.randn(pixels.shape, generator=generator, dtype=torch.float32).to(pixels.device)
    out = pixels + sigma * noise
    return out.clamp(0, 1) if clip else out
