"""fan_mm.benchmarks: the code behind ``tools/analysis/benchmark_*.py`` and docs/benchmarks.md.

- :mod:`.timing`: the one timing helper (warm-up, repeats, median; CUDA events and synchronisation on GPU,
  process CPU time where a loaded machine would distort wall-clock time).
- :mod:`.backbone`: dense backbones (fan_mm's and timm's) side by side: train / inference speed, memory,
  profiles, the autocast cast census.
- :mod:`.model`: whole mmdet / mmseg models from configs, random weights, synthetic batches.
- :mod:`.corruptions`: fan_mm's corruption engine against imagecorruptions 1.1.2, output compared.
- :mod:`.synthesis`: CPU time and disk space of a corrupted dataset, scaled from one image.
- :mod:`.noise_decay`: the noise-decay measurement on CPU and GPU, timed and compared.
- :mod:`.machine_code`: what fan_mm's Triton kernels compile to for a GPU architecture (registers,
  spills, occupancy, a loop iteration's loads and multiply-adds), read on any machine.
- :mod:`.results`: result files (JSON) and their Markdown tables.

Every result records :func:`fan_mm.utils.environment.collect_environment`. Importing this package
imports nothing heavy: :mod:`.timing`, :mod:`.corruptions` and :mod:`.synthesis` need no torch.
"""
