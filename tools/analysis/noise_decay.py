r"""Significant eigenvalues of the token affinity and feature perturbation under Gaussian noise, per block
(FAN paper Figure 3 (a)-(c)); numbers as CSV.

Example (random-init models, no download)::

    python tools/analysis/noise_decay.py vit_small_patch16_224 none photos/ --out work_dirs/noise \
        --models fan_small_12_p16_224 resnet50 --sigma 0.08 --threshold 0.1 --device cuda

See docs/analysis.md for the definitions.
"""
import argparse

from fan_mm.analysis.cli import add_common_args, load_images, load_models, parse_model_specs
from fan_mm.analysis.noise_decay import run_noise_decay
from fan_mm.analysis.spectral import DEFAULT_THRESHOLD


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.set_defaults(blocks=['all'])
    parser.add_argument('--sigma', type=float, nargs='+', default=[0.08],
                        help='std of the Gaussian noise added to RGB pixels in [0, 1] (default: 0.08, '
                             'ImageNet-C gaussian_noise severity 1); several values give several curves')
    parser.add_argument('--num-noise', type=int, default=1, help='noise draws per image and sigma (default: 1)')
    parser.add_argument('--clip', action='store_true', help='clip noisy pixels to [0, 1]')
    parser.add_argument('--threshold', type=float, default=DEFAULT_THRESHOLD,
                        help=f'an eigenvalue above this is significant (default: {DEFAULT_THRESHOLD:g})')
    parser.add_argument('--spectrum', default='sym', choices=('sym', 'max'),
                        help='sym: eigenvalues of D^-1/2 A D^-1/2 (in [0, 1] for softmax tokens); '
                             'max: eigenvalues of A over the largest (default: sym)')
    parser.add_argument('--batch-size', type=int, default=8, help='images per forward pass (default: 8)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    models = load_models(parse_model_specs(args.model, args.checkpoint, args.models), args.device, args.img_size)
    images, names = load_images(args.images, args.crop_size)
    paths = run_noise_decay(models, images, names, args.out, blocks=args.blocks, sigmas=args.sigma,
                            num_noise=args.num_noise, threshold=args.threshold, norm=args.norm,
                            spectrum=args.spectrum, batch_size=args.batch_size, seed=args.seed, clip=args.clip)
    for kind, path in paths.items():
        print(f'{kind}: {path}')


if __name__ == '__main__':
    main()
