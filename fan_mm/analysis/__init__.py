"""Seeing robustness: token grouping, significant eigenvalues and noise decay (FAN paper Figs. 3, 4, 8, 9).

- :mod:`.features`: per-block spatial token features of timm / fan_mm models and mm backbones.
- :mod:`.spectral`: token affinity, significant eigenvalues, spectral clustering, feature perturbation.
- :mod:`.token_clustering`, :mod:`.noise_decay`: the measurements behind ``tools/analysis/*.py``.
- :mod:`.plots`: the figures.
- :mod:`.corruption_grid`, :mod:`.channel_order`: every corruption at every severity for one image, and what
  the ``bgr_legacy`` channel order changes per corruption (no torch in themselves).
"""
from .features import BlockFeatureExtractor, BlockFeatures, LoadedModel, build_model, find_blocks
from .spectral import (affinity, affinity_eigenvalues, count_significant, perturbation,
                       significant_eigenvalues, spectral_clustering)

__all__ = ['BlockFeatureExtractor', 'BlockFeatures', 'LoadedModel', 'build_model', 'find_blocks', 'affinity',
           'affinity_eigenvalues', 'count_significant', 'perturbation', 'significant_eigenvalues',
           'spectral_clustering']
