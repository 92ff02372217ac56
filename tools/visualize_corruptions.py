"""Draw every corruption at every severity for one image.

    python tools/visualize_corruptions.py IMAGE --out grid.png [--suite all]
        [--corruptions fog,frost] [--severities 1,3,5] [--max-side 512] [--thumb 192]
        [--seed 0] [--channel-order rgb]
"""
import argparse
import sys

from fan_mm.corruptions import SUITES, get_corruption_names
from fan_mm.analysis.corruption_grid import corruption_grid, load_image, save_image


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('image', help='image file (any format Pillow reads)')
    p.add_argument('--out', required=True, help='output image, e.g. grid.png')
    p.add_argument('--suite', default='all', choices=list(SUITES))
    p.add_argument('--corruptions', default='', help='comma-separated names (default: suite)')
    p.add_argument('--severities', default='1,2,3,4,5')
    p.add_argument('--max-side', type=int, default=512,
                   help='reduce the image to this longer side before corrupting')
    p.add_argument('--thumb', type=int, default=192, help='width of each tile')
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        names = ([n.strip() for n in args.corruptions.split(',') if n.strip()]
                 or get_corruption_names(args.suite))
        severities = [int(s) for s in args.severities.split(',') if s.strip()]
        image = load_image(args.image)
        grid = corruption_grid(image, names, severities, max_side=args.max_side,
                               thumb=args.thumb, seed=args.seed)
        save_image(args.out, grid)
    except (OSError, ValueError, TypeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'wrote {args.out} ({grid.shape[1]}x{grid.shape[0]})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
