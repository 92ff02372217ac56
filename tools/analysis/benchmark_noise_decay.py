"""Time the noise-decay measurement (features, eigenvalues, perturbation) on CPU and GPU, side by side,
and check that both devices give the same numbers (see fan_mm.benchmarks.noise_decay).

For each model: the same random-init weights are measured on ``--cpu-images`` images on the CPU and on the GPU,
then on ``--gpu-images`` images on the GPU (the images cycle through the given files, flipped on odd rounds).
Writes ``benchmark.csv`` (seconds per image, device agreement) and ``benchmark.json`` (the same rows with the
settings and the environment) to ``--out``; ``--device cpu`` runs both sides on the CPU to check the setup. Needs only torch and timm (no
scikit-learn / matplotlib), so it runs on a bare GPU machine. See docs/benchmarks.md.
"""
import argparse

from fan_mm.benchmarks.noise_decay import DEFAULT_MODELS, run_noise_decay_benchmark


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('images', nargs='+', help='image files or folders')
    p.add_argument('--out', required=True)
    p.add_argument('--models', nargs='+', default=list(DEFAULT_MODELS))
    p.add_argument('--cpu-images', type=int, default=4)
    p.add_argument('--gpu-images', type=int, default=64)
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--sigma', type=float, default=0.08)
    p.add_argument('--device', default='cuda', help='the side set against the CPU (cpu: a setup check only)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        run_noise_decay_benchmark(args.images, args.out, args.models, args.cpu_images, args.gpu_images,
                                  args.batch_size, args.sigma, log=lambda row: print(row, flush=True),
                                  device=args.device)
    except RuntimeError as e:
        raise SystemExit(f'benchmark_noise_decay: {e}')


if __name__ == '__main__':
    main()
