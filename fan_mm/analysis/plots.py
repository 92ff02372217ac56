"""Figures: token clusters drawn over images (FAN paper Figs. 4, 8, 9) and noise decay curves (Fig. 3).

Figures are written with matplotlib's Agg backend at a fixed size (``figsize * dpi`` pixels, no tight bounding
box), so their pixel size is known in advance.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# qualitative colours, distinguishable for up to 10 clusters (tab10), then repeated
_PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], dtype=np.float64)

CELL_INCHES = 2.2
DPI = 100


def _pyplot():
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt
    return plt


def overlay_clusters(image: np.ndarray, labels: np.ndarray, alpha: float = 0.55,
                     boundaries: bool = True) -> np.ndarray:
    """Blend a colour per cluster over ``image`` (``H x W x 3`` uint8) with an ``H x W`` label map.

    Cluster boundaries are drawn in white, as in the DINO-style visualisation the FAN authors used.
    """
    if image.shape[:2] != labels.shape:
        raise ValueError(f'image {image.shape[:2]} and label map {labels.shape} differ in size')
    colours = _PALETTE[labels % len(_PALETTE)]
    out = (1 - alpha) * image.astype(np.float64) + alpha * colours
    if boundaries:
        from skimage.segmentation import find_boundaries
        out[find_boundaries(labels, mode='inner')] = 255
    return np.clip(out, 0, 255).round().astype(np.uint8)


def clustering_figure(rows: Sequence[Tuple[str, np.ndarray, Sequence[Tuple[str, np.ndarray]]]], path: str,
                      note: Optional[str] = None) -> Tuple[int, int]:
    """Write a grid: one row per image, the image first, then one overlay panel per (model, block).

    Args:
        rows: ``(image name, image, [(panel title, overlay image), ...])``, all rows with the same panel count.
        path: PNG file to write.
        note: a line under the grid (e.g. that some models are randomly initialised).
    Returns:
        the figure size in pixels ``(width, height)``.
    """
    plt = _pyplot()
    n_rows = len(rows)
    n_cols = 1 + max(len(r[2]) for r in rows)
    note_h = 0.3 if note else 0.0
    fig_w, fig_h = CELL_INCHES * n_cols, CELL_INCHES * n_rows + 0.25 + note_h
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)
    bottom = note_h / fig_h
    gs = fig.add_gridspec(n_rows, n_cols, left=0.01, right=0.99, bottom=bottom + 0.01, top=1 - 0.25 / fig_h,
                          wspace=0.04, hspace=0.18)
    for r, (name, image, panels) in enumerate(rows):
        ax = fig.add_subplot(gs[r, 0])
        ax.imshow(image)
        ax.set_title(name, fontsize=7)
        ax.axis('off')
        for c, (title, panel) in enumerate(panels, start=1):
            ax = fig.add_subplot(gs[r, c])
            ax.imshow(panel)
            ax.set_title(title, fontsize=6)
            ax.axis('off')
    if note:
        fig.text(0.5, note_h / (2 * fig_h), note, ha='center', va='center', fontsize=7, color='firebrick')
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return round(fig_w * DPI), round(fig_h * DPI)


def noise_decay_figure(curves: Sequence[Dict], path: str, threshold: float,
                       note: Optional[str] = None) -> Tuple[int, int]:
    """Figure 3 (a)-(c): per model, perturbation and # significant eigenvalues over blocks; then all models.

    Args:
        curves: one dict per model with ``label``, ``block_index`` (0-based, per block), ``num_blocks``,
            ``n_significant`` (mean over images, per block) and ``perturbation`` (``{sigma: per-block mean}``).
        path: PNG file to write.
        threshold: the eigenvalue threshold, for the axis label.
        note: a line under the plots.
    Returns:
        the figure size in pixels ``(width, height)``.
    """
    plt = _pyplot()
    n = len(curves) + 1
    panel_w, panel_h = 4.0, 3.2
    note_h = 0.3 if note else 0.0
    fig_w, fig_h = panel_w * n, panel_h + note_h
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=DPI)
    bottom = (note_h + 0.55) / fig_h
    gs = fig.add_gridspec(1, n, left=0.6 / fig_w, right=1 - 0.1 / fig_w, bottom=bottom,
                          top=1 - 0.35 / fig_h, wspace=0.55)
    letters = 'abcdefghijklmnopqrstuvwxyz'
    styles = ['-', '--', ':', '-.']
    for i, c in enumerate(curves):
        ax = fig.add_subplot(gs[0, i])
        x = np.asarray(c['block_index']) + 1
        for j, (sigma, pert) in enumerate(sorted(c['perturbation'].items())):
            ax.plot(x, pert, styles[j % len(styles)], color='tab:red', marker='o', ms=3,
                    label=f'perturbation, sigma={sigma:g}')
        ax.set_xlabel('block', fontsize=8)
        ax.set_ylabel('normalised feature perturbation', fontsize=8, color='tab:red')
        ax.tick_params(labelsize=7)
        ax2 = ax.twinx()
        ax2.plot(x, c['n_significant'], color='tab:blue', marker='s', ms=3, label='# significant eigenvalues')
        ax2.set_ylabel(f'# eigenvalues > {threshold:g}', fontsize=8, color='tab:blue')
        ax2.tick_params(labelsize=7)
        ax.set_title(f'({letters[i]}) {c["label"]}', fontsize=8)
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=6, loc='best', framealpha=0.6)
    ax = fig.add_subplot(gs[0, n - 1])
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, c in enumerate(curves):
        depth = (np.asarray(c['block_index']) + 1) / c['num_blocks']
        for j, (sigma, pert) in enumerate(sorted(c['perturbation'].items())):
            ax.plot(depth, pert, styles[j % len(styles)], color=colours[i % len(colours)], marker='o', ms=3,
                    label=f'{c["label"]}' + (f', sigma={sigma:g}' if len(c['perturbation']) > 1 else ''))
    ax.set_xlabel('relative depth (block / number of blocks)', fontsize=8)
    ax.set_ylabel('normalised feature perturbation', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f'({letters[n - 1]}) noise decay', fontsize=8)
    ax.legend(fontsize=5, loc='best', framealpha=0.6)
    if note:
        fig.text(0.5, note_h / (2 * fig_h), note, ha='center', va='center', fontsize=7, color='firebrick')
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return round(fig_w * DPI), round(fig_h * DPI)


def png_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` of a PNG file, read from its header (raises if it is not a PNG)."""
    with open(path, 'rb') as f:
        head = f.read(24)
    if head[:8] != b'\x89PNG\r\n\x1a\n' or head[12:16] != b'IHDR':
        raise ValueError(f'{path} is not a PNG file')
    return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')


def random_init_note(labels: List[str]) -> Optional[str]:
    """The warning line for figures made with randomly initialised models, or None."""
    if any('random init' in lab for lab in labels):
        return ('random init: untrained weights, not the trained models of the paper; '
                'patterns here say nothing about a trained backbone')
    return None
