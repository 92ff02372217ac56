r"""Spectral clustering of block tokens drawn over images (FAN paper Figures 4, 8, 9).

Example (random-init models, no download)::

    python tools/analysis/token_clustering.py vit_small_patch16_224 none photo.jpg --out work_dirs/clusters \
        --models fan_small_12_p16_224 resnet50 --blocks -2 --num-clusters 2

See docs/analysis.md for the definitions.
"""
import argparse

from fan_mm.analysis.cli import add_common_args, load_images, load_models, parse_model_specs
from fan_mm.analysis.token_clustering import run_token_clustering


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.set_defaults(blocks=['-2'])
    parser.add_argument('--num-clusters', type=int, default=2,
                        help='number of token groups (default: 2, as the FAN authors used for Figure 9)')
    parser.add_argument('--alpha', type=float, default=0.55, help='opacity of the cluster colours (default: 0.55)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.num_clusters < 1:
        raise SystemExit(f'--num-clusters must be >= 1, got {args.num_clusters}')
    models = load_models(parse_model_specs(args.model, args.checkpoint, args.models), args.device, args.img_size)
    images, names = load_images(args.images, args.crop_size)
    paths = run_token_clustering(models, images, names, args.out, blocks=args.blocks,
                                 num_clusters=args.num_clusters, norm=args.norm, seed=args.seed, alpha=args.alpha)
    for kind, path in paths.items():
        print(f'{kind}: {path}')


if __name__ == '__main__':
    main()
