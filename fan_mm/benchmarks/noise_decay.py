"""The noise-decay measurement (features, eigenvalues, perturbation) timed on CPU and GPU, side by side,
with a check that both devices give the same numbers.

For each model, the same random-init weights are measured on ``cpu_images`` images on the CPU and on the
GPU, then on ``gpu_images`` images on the GPU (the images cycle through the given ones, flipped on odd
rounds). Needs only torch and timm (no scikit-learn / matplotlib), so it runs on a bare GPU machine.
``device='cpu'`` runs the second side on the CPU too: the figures then mean nothing, but the whole
benchmark runs (what the CPU test does). Used by ``tools/analysis/benchmark_noise_decay.py``.
"""
import copy
import csv
import io
import os
from typing import Dict, List, Sequence

import numpy as np

from fan_mm.utils.files import atomic_write
from .timing import timed_call

DEFAULT_MODELS = ('vit_small_patch16_224', 'fan_small_12_p16_224', 'fan_small_12_p4_hybrid',
                  'fan_swin_tiny_patch4_window7_224', 'lvvit_s', 'resnet50', 'swin_tiny_patch4_window7_224',
                  'convnext_tiny')


def cycle_images(base: Sequence[np.ndarray], base_names: Sequence[str], n: int):
    """``n`` images cycling through ``base``, flipped left-right on odd rounds, and their names."""
    images = [base[i % len(base)] if (i // len(base)) % 2 == 0 else base[i % len(base)][:, ::-1].copy()
              for i in range(n)]
    return images, [f'{base_names[i % len(base)]}_{i}' for i in range(n)]


def benchmark_model(name: str, images, names, cpu_images: int, gpu_images: int, batch_size: int = 32,
                    sigma: float = 0.08, device: str = 'cuda') -> Dict[str, object]:
    """One row: seconds per image on the CPU and on ``device``, their ratio, and how far the two agree."""
    import torch

    from fan_mm.analysis.features import build_model
    from fan_mm.analysis.noise_decay import measure_noise_decay
    torch.manual_seed(0)
    cpu_model = build_model(name, 'none', 'cpu')
    gpu_model = copy.deepcopy(cpu_model)
    gpu_model.model.to(device)
    kw = dict(sigmas=(sigma,), batch_size=batch_size)
    # warm-up (cuDNN autotuning, lazy CUDA init) outside the timings
    measure_noise_decay(gpu_model, images[:2], names[:2], **kw)
    t_cpu, (cpu_rows, _) = timed_call(
        lambda: measure_noise_decay(cpu_model, images[:cpu_images], names[:cpu_images], **kw), device)
    _, (gpu_rows, _) = timed_call(
        lambda: measure_noise_decay(gpu_model, images[:cpu_images], names[:cpu_images], **kw), device)
    t_gpu, _ = timed_call(
        lambda: measure_noise_decay(gpu_model, images[:gpu_images], names[:gpu_images], **kw), device)
    p_cpu = np.array([r['perturbation'] for r in cpu_rows])
    p_gpu = np.array([r['perturbation'] for r in gpu_rows])
    same_counts = np.mean([a['n_significant'] == b['n_significant'] for a, b in zip(cpu_rows, gpu_rows)])
    return dict(model=name, num_blocks=cpu_rows[-1]['num_blocks'],
                cpu_s_per_image=t_cpu / cpu_images, gpu_s_per_image=t_gpu / gpu_images,
                speedup=(t_cpu / cpu_images) / (t_gpu / gpu_images),
                max_rel_diff_perturbation=float(np.max(np.abs(p_cpu - p_gpu) / np.abs(p_cpu))),
                share_equal_counts=float(same_counts))


def run_noise_decay_benchmark(image_paths: Sequence[str], out_dir: str, models: Sequence[str] = DEFAULT_MODELS,
                              cpu_images: int = 4, gpu_images: int = 64, batch_size: int = 32,
                              sigma: float = 0.08, log=print, device: str = 'cuda') -> List[Dict[str, object]]:
    """Every model of ``models`` on the images of ``image_paths`` (files or folders); the rows are written
    to ``out_dir/benchmark.csv`` and, with the settings and the environment, to ``out_dir/benchmark.json``.
    ``device``: the side set against the CPU (a CUDA device; ``'cpu'`` only checks that it runs)."""
    import torch

    from fan_mm.analysis.cli import load_images
    from fan_mm.utils.environment import collect_environment
    from .results import write_json
    if torch.device(device).type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('the noise-decay benchmark needs a CUDA device (--device cpu only checks that it runs)')
    os.makedirs(out_dir, exist_ok=True)
    base, base_names = load_images(image_paths, 224)
    images, names = cycle_images(base, base_names, max(cpu_images, gpu_images))
    rows = []
    for name in models:
        row = benchmark_model(name, images, names, cpu_images, gpu_images, batch_size, sigma, device)
        log(row)
        rows.append(row)
    table = io.StringIO(newline='')
    w = csv.DictWriter(table, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write(os.path.join(out_dir, 'benchmark.csv'), table.getvalue().encode())
    write_json(os.path.join(out_dir, 'benchmark.json'),
               dict(kind='noise_decay', env=collect_environment(device=device), device=device,
                    cpu_images=cpu_images, gpu_images=gpu_images, batch_size=batch_size, sigma=sigma,
                    images=list(base_names), rows=rows))
    return rows
