"""Significant eigenvalues and noise decay over blocks (FAN paper Sec. 2.2, Figure 3 (a)-(c)).

For each model, image and block: the number of significant eigenvalues of the token affinity of the clean
image (:func:`fan_mm.analysis.spectral.affinity_eigenvalues`), and the normalised feature perturbation
``||Z(x + n) - Z(x)||_F / ||Z(x)||_F`` of the block's spatial tokens ``Z`` when Gaussian noise
``n ~ N(0, sigma^2)`` is added to the input pixels (RGB in [0, 1], before the model's mean / std
normalisation, not clipped unless asked), averaged over ``num_noise`` draws. The paper gives neither the noise
strength nor whether noise is clipped; ``sigma`` defaults to 0.08, the strength of ImageNet-C's
``gaussian_noise`` at severity 1. Noise is drawn from a seed per (image, draw), so models with the same input
size see the same noise.
"""
from __future__ import annotations

import csv
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .features import BlockFeatureExtractor, LoadedModel, model_inputs, to_pixels
from .spectral import (DEFAULT_THRESHOLD, add_gaussian_noise, affinity_eigenvalues, count_significant,
                       perturbation)

ROW_FIELDS = ('model', 'weights', 'image', 'block_index', 'block', 'num_blocks', 'relative_depth', 'grid_h',
              'grid_w', 'channels', 'sigma', 'n_significant', 'perturbation', 'perturbation_std')
SUMMARY_FIELDS = ('model', 'weights', 'block_index', 'block', 'num_blocks', 'relative_depth', 'sigma',
                  'num_images', 'n_significant_mean', 'n_significant_std', 'perturbation_mean',
                  'perturbation_std')


def _noise_seed(seed: int, image_index: int, draw: int) -> int:
    return (seed * 1_000_003 + image_index * 9_973 + draw) % (2 ** 63)


def measure_noise_decay(loaded: LoadedModel, images: Sequence[np.ndarray], image_names: Sequence[str],
                        blocks=None, sigmas: Sequence[float] = (0.08,), num_noise: int = 1,
                        threshold: float = DEFAULT_THRESHOLD, norm: str = 'softmax', spectrum: str = 'sym',
                        batch_size: int = 8, seed: int = 0, clip: bool = False,
                        device: Optional[str] = None) -> Tuple[List[Dict], Dict[str, np.ndarray]]:
    """Per-image, per-block rows (see ``ROW_FIELDS``) and the clean eigenvalue spectra of one model.

    Args:
        loaded: the model (from :func:`fan_mm.analysis.features.build_model`).
        images: square uint8 RGB crops; resized to the model's input size.
        blocks: block selection (see :func:`fan_mm.analysis.features.resolve_blocks`), default all.
        sigmas: noise standard deviations (pixels in [0, 1]); one row per sigma.
        num_noise: noise draws per image and sigma; the perturbation is their mean (std in the row).
        threshold, norm, spectrum: see :func:`fan_mm.analysis.spectral.affinity_eigenvalues`.
    Returns:
        ``(rows, spectra)`` with ``spectra[block name]`` the ``num_images x N`` eigenvalues.
    """
    if num_noise < 1:
        raise ValueError(f'num_noise must be >= 1, got {num_noise}')
    if len(images) != len(image_names):
        raise ValueError('images and image_names differ in length')
    device = device or next(loaded.model.parameters()).device
    extractor = BlockFeatureExtractor(loaded.model, blocks)
    num_blocks = len(extractor)
    rows, spectra = [], defaultdict(list)
    weights = 'random init' if not loaded.pretrained else 'pretrained'
    for start in range(0, len(images), batch_size):
        batch = list(images[start:start + batch_size])
        pixels = to_pixels(batch, loaded.input_size).to(device)
        clean = extractor(model_inputs(loaded, pixels))
        pert = {s: [[] for _ in clean] for s in sigmas}  # sigma -> block -> draws of (B,)
        for sigma in sigmas:
            for draw in range(num_noise):
                noisy_pixels = torch.cat([
                    add_gaussian_noise(pixels[i:i + 1], sigma,
                                       torch.Generator().manual_seed(_noise_seed(seed, start + i, draw)), clip)
                    for i in range(len(batch))])
                noisy = extractor(model_inputs(loaded, noisy_pixels))
                for k, (c, nz) in enumerate(zip(clean, noisy)):
                    pert[sigma][k].append(perturbation(c.tokens, nz.tokens).cpu())
        for k, feat in enumerate(clean):
            ev = affinity_eigenvalues(feat.tokens, norm, spectrum).cpu()
            counts = count_significant(ev, threshold)
            spectra[feat.name].append(ev.numpy())
            for sigma in sigmas:
                draws = torch.stack(pert[sigma][k])  # num_noise x B
                for i in range(len(batch)):
                    rows.append(dict(
                        model=loaded.label, weights=weights, image=image_names[start + i],
                        block_index=feat.index, block=feat.name, num_blocks=num_blocks,
                        relative_depth=(feat.index + 1) / num_blocks, grid_h=feat.grid[0], grid_w=feat.grid[1],
                        channels=feat.tokens.shape[-1], sigma=float(sigma), n_significant=int(counts[i]),
                        perturbation=float(draws[:, i].mean()),
                        perturbation_std=float(draws[:, i].std(unbiased=False))))
    return rows, {k: np.concatenate(v) for k, v in spectra.items()}


def summarize(rows: Sequence[Dict]) -> List[Dict]:
    """Mean / std over images of each (model, block, sigma); see ``SUMMARY_FIELDS``."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r['model'], r['block_index'], r['sigma'])].append(r)
    out = []
    for (model, index, sigma), rs in groups.items():
        ns = np.array([r['n_significant'] for r in rs], dtype=np.float64)
        ps = np.array([r['perturbation'] for r in rs], dtype=np.float64)
        r0 = rs[0]
        out.append(dict(model=model, weights=r0['weights'], block_index=index, block=r0['block'],
                        num_blocks=r0['num_blocks'], relative_depth=r0['relative_depth'], sigma=sigma,
                        num_images=len(rs), n_significant_mean=ns.mean(), n_significant_std=ns.std(),
                        perturbation_mean=ps.mean(), perturbation_std=ps.std()))
    order = {m: i for i, m in enumerate(dict.fromkeys(r['model'] for r in rows))}
    return sorted(out, key=lambda r: (order[r['model']], r['block_index'], r['sigma']))


def curves_from_summary(summary: Sequence[Dict]) -> List[Dict]:
    """Per-model curves for :func:`fan_mm.analysis.plots.noise_decay_figure`."""
    by_model = defaultdict(list)
    for r in summary:
        by_model[r['model']].append(r)
    curves = []
    for model, rs in by_model.items():
        blocks = sorted({r['block_index'] for r in rs})
        n_sig = {r['block_index']: r['n_significant_mean'] for r in rs}
        pert = defaultdict(dict)
        for r in rs:
            pert[r['sigma']][r['block_index']] = r['perturbation_mean']
        curves.append(dict(label=model, block_index=blocks, num_blocks=rs[0]['num_blocks'],
                           n_significant=[n_sig[b] for b in blocks],
                           perturbation={s: [p[b] for b in blocks] for s, p in pert.items()}))
    return curves


def write_csv(rows: Sequence[Dict], path: str, fields: Sequence[str]):
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        for r in rows:
            w.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in r.items() if k in fields})


def run_noise_decay(models: Sequence[LoadedModel], images: Sequence[np.ndarray], image_names: Sequence[str],
                    out_dir: str, blocks=None, sigmas: Sequence[float] = (0.08,), num_noise: int = 1,
                    threshold: float = DEFAULT_THRESHOLD, norm: str = 'softmax', spectrum: str = 'sym',
                    batch_size: int = 8, seed: int = 0, clip: bool = False) -> Dict[str, str]:
    """Measure every model and write ``noise_decay.csv`` (per image), ``noise_decay_summary.csv``,
    ``eigenvalues.npz`` (clean spectra, to recount with another threshold) and ``noise_decay.png``.

    Returns the paths written, by kind.
    """
    os.makedirs(out_dir, exist_ok=True)
    all_rows, spectra = [], {}
    for loaded in models:
        rows, spec = measure_noise_decay(loaded, images, image_names, blocks=blocks, sigmas=sigmas,
                                         num_noise=num_noise, threshold=threshold, norm=norm,
                                         spectrum=spectrum, batch_size=batch_size, seed=seed, clip=clip)
        all_rows.extend(rows)
        for block, ev in spec.items():
            spectra[f'{loaded.label}|{block}'] = ev
    summary = summarize(all_rows)
    paths = dict(rows=osp.join(out_dir, 'noise_decay.csv'), summary=osp.join(out_dir, 'noise_decay_summary.csv'),
                 spectra=osp.join(out_dir, 'eigenvalues.npz'), figure=osp.join(out_dir, 'noise_decay.png'))
    write_csv(all_rows, paths['rows'], ROW_FIELDS)
    write_csv(summary, paths['summary'], SUMMARY_FIELDS)
    np.savez_compressed(paths['spectra'], **spectra)
    from .plots import noise_decay_figure, random_init_note
    noise_decay_figure(curves_from_summary(summary), paths['figure'], threshold,
                       note=random_init_note([m.label for m in models]))
    return paths
