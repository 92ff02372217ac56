"""Generate one of fan_mm's small built-in datasets (see docs/toy_datasets.md).

    python tools/make_toy_dataset.py coco data/toy_coco
    python tools/make_toy_dataset.py cityscapes data/toy_cityscapes --num-train 48 --size 256x128
"""
import argparse
import logging
import sys

from fan_mm.datasets.toy import DEFAULTS, make_toy_dataset, parse_size, verify_toy_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a small deterministic dataset built from scikit-image photos: a COCO-format '
                    'instance-segmentation set (coco) or a Cityscapes-layout semantic-segmentation set '
                    '(cityscapes). Running it again with the same arguments does nothing.')
    parser.add_argument('kind', choices=sorted(DEFAULTS), help='which dataset')
    parser.add_argument('out_dir', help='dataset root to create (must be new, empty or a toy dataset)')
    parser.add_argument('--num-train', type=int, default=None,
                        help='training images (default: coco %(c)d, cityscapes %(s)d)' % dict(
                            c=DEFAULTS['coco']['num_train'], s=DEFAULTS['cityscapes']['num_train']))
    parser.add_argument('--num-val', type=int, default=None,
                        help='validation images (default: coco %(c)d, cityscapes %(s)d)' % dict(
                            c=DEFAULTS['coco']['num_val'], s=DEFAULTS['cityscapes']['num_val']))
    parser.add_argument('--size', nargs='+', default=None, metavar='SIZE',
                        help='image size as WIDTH HEIGHT or WIDTHxHEIGHT (default: coco %s, cityscapes %s)' % (
                            '%dx%d' % DEFAULTS['coco']['size'], '%dx%d' % DEFAULTS['cityscapes']['size']))
    parser.add_argument('--seed', type=int, default=None, help='random seed (default: 0)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a toy dataset at OUT_DIR that was made with other arguments')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format='%(message)s')
    kwargs = dict(overwrite=args.overwrite)
    for key in ('num_train', 'num_val', 'seed'):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    try:
        if args.size is not None:
            kwargs['size'] = parse_size(' '.join(args.size), args.kind)
        result = make_toy_dataset(args.kind, args.out_dir, **kwargs)
    except (ValueError, OSError) as e:
        sys.exit(f'make_toy_dataset: error: {e}')
    problems = verify_toy_dataset(result.root)
    if problems:
        sys.exit('make_toy_dataset: error: the dataset does not match its manifest:\n  ' + '\n  '.join(problems))
    params = result.manifest['params']
    print(f"{'wrote' if result.created else 'already complete:'} {result.root} ({args.kind}, "
          f"{params['num_train']} train + {params['num_val']} val images of "
          f"{params['size'][0]}x{params['size'][1]}, seed {params['seed']})")


if __name__ == '__main__':
    main()
