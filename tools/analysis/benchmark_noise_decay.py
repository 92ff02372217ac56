"""Time the noise-decay measurement (features, eigenvalues, perturbation) on CPU and GPU, side by side,
and check that both devices give the same numbers.

For each model: the same random-init weights are measured on ``--cpu-images`` images on the CPU and on the GPU,
then on ``--gpu-images`` images on the GPU (the images cycle through the given files, flipped on odd rounds).
Writes ``benchmark.csv`` (seconds per image, device agreement) to ``--out``. Needs only torch and timm (no
scikit-learn / matplotlib), so it runs on a bare GPU machine. See docs/analysis.md for the numbers.
"""
import argparse
import copy
import csv
import os
import time

import numpy as np
import torch

from fan_mm.analysis.cli import load_images
from fan_mm.analysis.features import build_model
from fan_mm.analysis.noise_decay import measure_noise_decay

DEFAULT_MODELS = ['vit_small_patch16_224', 'fan_small_12_p16_224', 'fan_small_12_p4_hybrid',
                  'fan_swin_tiny_patch4_window7_224', 'lvvit_s', 'resnet50', 'swin_tiny_patch4_window7_224',
                  'convnext_tiny']


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--out', required=True)
    p.add_argument('--models', nargs='+', default=DEFAULT_MODELS)
    p.add_argument('--cpu-images', type=int, default=4)
    p.add_argument('--gpu-images', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--sigma', type=float, default=0.08)
    return p.parse_args(argv)


def _timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit('benchmark_noise_decay needs a CUDA device')
    os.makedirs(args.out, exist_ok=True)
    base, base_names = load_images(args.images, 224)
    n = max(args.cpu_images, args.gpu_images)
    images = [base[i % len(base)] if (i // len(base)) % 2 == 0 else base[i % len(base)][:, ::-1].copy()
              for i in range(n)]
    names = [f'{base_names[i % len(base)]}_{i}' for i in range(n)]
    results = []
    for name in args.models:
        torch.manual_seed(0)
        cpu_model = build_model(name, 'none', 'cpu')
        gpu_model = copy.deepcopy(cpu_model)
        gpu_model.model.cuda()
        kw = dict(sigmas=(args.sigma,), batch_size=args.batch_size)
        # warm-up (cuDNN autotuning, lazy CUDA init) outside the timings
        measure_noise_decay(gpu_model, images[:2], names[:2], **kw)
        (cpu_rows, _), t_cpu = _timed(lambda: measure_noise_decay(cpu_model, images[:args.cpu_images],
                                                                   names[:args.cpu_images], **kw))
        (gpu_rows, _), _ = _timed(lambda: measure_noise_decay(gpu_model, images[:args.cpu_images],
                                                               names[:args.cpu_images], **kw))
        (_, _), t_gpu = _timed(lambda: measure_noise_decay(gpu_model, images[:args.gpu_images],
                                                            names[:args.gpu_images], **kw))
        p_cpu = np.array([r['perturbation'] for r in cpu_rows])
        p_gpu = np.array([r['perturbation'] for r in gpu_rows])
        same_counts = np.mean([a['n_significant'] == b['n_significant'] for a, b in zip(cpu_rows, gpu_rows)])
        row = dict(model=name, num_blocks=cpu_rows[-1]['num_blocks'],
                   cpu_s_per_image=t_cpu / args.cpu_images, gpu_s_per_image=t_gpu / args.gpu_images,
                   speedup=(t_cpu / args.cpu_images) / (t_gpu / args.gpu_images),
                   max_rel_diff_perturbation=float(np.max(np.abs(p_cpu - p_gpu) / np.abs(p_cpu))),
                   share_equal_counts=float(same_counts))
        print(row, flush=True)
        results.append(row)
    with open(os.path.join(args.out, 'benchmark.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(results[0]))
        w.writeheader()
        w.writerows(results)


if __name__ == '__main__':
    main()
