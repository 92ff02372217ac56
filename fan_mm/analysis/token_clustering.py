"""Token grouping drawn over images (FAN paper Figures 4, 8 and 9; App. A.6).

Per image, model and chosen block: the block's spatial tokens are softmax-normalised over channels, their
self-correlation is the affinity, and spectral clustering splits the tokens into ``num_clusters`` groups
(:func:`fan_mm.analysis.spectral.spectral_clustering`). The token labels are upsampled (nearest) to the displayed
crop and blended over it. The paper's default block is the second last one (``-2``); the FAN authors used two
clusters for Figure 9 (NVlabs/FAN issue #3). Colours are matched across the panels of one image (Hungarian
matching to the first panel), so the same colour marks the best-overlapping group.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np

from .features import BlockFeatureExtractor, LoadedModel, model_inputs, to_pixels
from .plots import clustering_figure, overlay_clusters, random_init_note
from .spectral import label_mapping, spectral_clustering, upsample_labels


def cluster_blocks(loaded: LoadedModel, image: np.ndarray, blocks=(-2,), num_clusters: int = 2,
                   norm: str = 'softmax', seed: int = 0) -> List[Dict]:
    """Cluster the tokens of the chosen blocks of one image.

    Returns one dict per block: ``block`` (name), ``index``, ``grid`` and ``labels`` (``grid`` label map).
    """
    device = next(loaded.model.parameters()).device
    extractor = BlockFeatureExtractor(loaded.model, list(blocks))
    feats = extractor(model_inputs(loaded, to_pixels([image], loaded.input_size).to(device)))
    out = []
    for f in feats:
        labels = spectral_clustering(f.tokens[0].cpu(), num_clusters, norm, seed)
        out.append(dict(block=f.name, index=f.index, num_blocks=len(extractor), grid=f.grid,
                        labels=labels.reshape(f.grid)))
    return out


def run_token_clustering(models: Sequence[LoadedModel], images: Sequence[np.ndarray],
                         image_names: Sequence[str], out_dir: str, blocks=(-2,), num_clusters: int = 2,
                         norm: str = 'softmax', seed: int = 0, alpha: float = 0.55,
                         figure_name: str = 'token_clustering.png') -> Dict[str, str]:
    """Cluster every (image, model, block) and write the figure and ``token_clusters.npz`` (label maps).

    ``images`` are the square uint8 RGB crops that are shown; each model sees them at its input size.
    Returns the paths written, by kind.
    """
    os.makedirs(out_dir, exist_ok=True)
    rows, arrays = [], {}
    for name, image in zip(image_names, images):
        size = image.shape[:2]
        panels, reference = [], None
        for loaded in models:
            for res in cluster_blocks(loaded, image, blocks, num_clusters, norm, seed):
                lab = upsample_labels(res['labels'], res['grid'], size)
                if reference is None:
                    reference = lab
                else:
                    mapping = label_mapping(lab, reference, num_clusters)
                    lab, res['labels'] = mapping[lab], mapping[res['labels']]
                title = f'{loaded.label}\n{res["block"]} (block {res["index"] + 1}/{res["num_blocks"]})'
                panels.append((title, overlay_clusters(image, lab, alpha)))
                arrays[f'{name}|{loaded.label}|{res["block"]}'] = res['labels']
        rows.append((name, image, panels))
    paths = dict(figure=osp.join(out_dir, figure_name), labels=osp.join(out_dir, 'token_clusters.npz'))
    clustering_figure(rows, paths['figure'], note=random_init_note([m.label for m in models]))
    np.savez_compressed(paths['labels'], **arrays)
    return paths
