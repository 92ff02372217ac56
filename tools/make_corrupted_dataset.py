r"""Write a corrupted copy of a dataset (Cityscapes-C, COCO-C, ...); see docs/robustness.md.

    python tools/make_corrupted_dataset.py data/cityscapes data/cityscapes-c --suite cityscapes-c \
        --policy noise-1-3 --workers 16
    python tools/make_corrupted_dataset.py data/coco data/coco-c --suite coco-c --shard 3/8 --workers 32
    python tools/make_corrupted_dataset.py data/cityscapes-c --verify

As NVlabs' gen_city_c.py / gen_coco_c.py (the FAN paper's Cityscapes-C / COCO-C protocol; their
random draws cannot be reproduced, the protocol can):

    python tools/make_corrupted_dataset.py data/cityscapes data/cityscapes-c-fan --suite cityscapes-c \
        --channel-order bgr_legacy --format png
    python tools/make_corrupted_dataset.py data/coco data/coco-c-fan --suite cityscapes-c \
        --channel-order bgr_legacy --format jpeg --jpeg-quality 95

Exit status: 0 done, 1 some inputs failed (named on stderr; the rest was written),
2 bad arguments or destination, 3 verification found problems, 130 interrupted.
"""
import argparse
import logging
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.robustness import codec, protocol, synthesis  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write DST/<corruption>/<severity>/<path relative to SRC> for every image of SRC. '
                    'Deterministic (byte-identical whatever --workers/--shard), resumable (run it again to '
                    'finish), lossless (PNG) by default. With --verify, check a finished DST instead.')
    parser.add_argument('src', help='dataset root (or image folder); with --verify: the DST to check')
    parser.add_argument('dst', nargs='?', help='destination root of the corrupted copies')
    parser.add_argument('--suite', help=f'corruption suite: {", ".join(protocol.suite_names())}')
    parser.add_argument('--corruptions', nargs='+', metavar='NAME', help='subset of the suite (default: all)')
    sev = parser.add_mutually_exclusive_group()
    sev.add_argument('--severities', nargs='+', type=int, metavar='S', help='severities (1..5) for every corruption')
    sev.add_argument('--policy', help=f'severity policy: {", ".join(protocol.policy_names())} (default 1-5)')
    parser.add_argument('--seed', type=int, default=0, help='base seed of the per-image seeds (default 0)')
    parser.add_argument('--workers', type=int, default=1, help='worker processes (default 1)')
    parser.add_argument('--shard', default='0/1', help='I/N: do the I-th of N disjoint parts (0-based; default 0/1)')
    parser.add_argument('--layout', default='auto', choices=['auto', *synthesis.LAYOUTS],
                        help='where SRC keeps its images (default: detect, else every image under SRC)')
    parser.add_argument('--split', default='val', help='split of the preset layout (default val)')
    parser.add_argument('--image-dir', help='image folder relative to SRC, overriding the layout preset')
    parser.add_argument('--suffixes', nargs='+', help='file endings that count as images (default: the preset\'s)')
    parser.add_argument('--channel-order', default='rgb', choices=list(protocol.PROTOCOL_CHANNEL_ORDERS),
                        help='rgb (default): corrupt the RGB image; bgr_legacy: corrupt the BGR array as if it '
                             'were RGB, as mmdet\'s Corrupt and NVlabs\' gen_coco_c.py / gen_city_c.py did (10 of '
                             'the 19 differ: the noises, snow, frost, spatter, brightness, saturate, '
                             'jpeg_compression); docs/robustness.md gives the flags of each published protocol')
    parser.add_argument('--format', default='png', choices=list(codec.OUTPUT_FORMATS),
                        help='output format: png (lossless, default) or jpeg (lossy: alters the corruption; '
                             'NVlabs\' COCO-C was written so, at --jpeg-quality 95)')
    parser.add_argument('--png-compression', type=int, default=6, choices=range(10), metavar='0-9',
                        help='zlib level of the PNG files (default 6)')
    parser.add_argument('--jpeg-quality', type=int, default=95, help='JPEG quality with --format jpeg (default 95)')
    parser.add_argument('--strict', action='store_true',
                        help='treat grey, alpha, palette and 16-bit inputs as failures instead of converting them')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    parser.add_argument('--verify', action='store_true', help='check SRC (a finished DST) against its manifests')
    parser.add_argument('--no-checksums', action='store_true', help='with --verify: check sizes only')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s: %(message)s', stream=sys.stderr)
    if args.verify:
        problems = synthesis.verify(args.src, checksums=not args.no_checksums)
        for p in problems:
            print(p, file=sys.stderr)
        print(f'{args.src}: {"OK" if not problems else f"{len(problems)} problem(s)"}')
        return 3 if problems else 0
    if args.dst is None or args.suite is None:
        print('make_corrupted_dataset: error: SRC, DST and --suite are required (or --verify DST)', file=sys.stderr)
        return 2
    try:
        result = synthesis.synthesize(
            args.src, args.dst, args.suite, corruptions=args.corruptions, policy=args.policy,
            severities=args.severities, seed=args.seed, workers=args.workers, shard=synthesis.parse_shard(args.shard),
            layout=args.layout, split=args.split, image_dir=args.image_dir, suffixes=args.suffixes,
            channel_order=args.channel_order, fmt=args.format, png_compression=args.png_compression,
            jpeg_quality=args.jpeg_quality, strict=args.strict, progress=not args.no_progress)
    except (synthesis.SynthesisError, protocol.ProtocolError) as e:
        print(f'make_corrupted_dataset: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted: run the same command again to finish', file=sys.stderr)
        return 130
    print(f'{result.dst}: shard {result.shard[0]}/{result.shard[1]}: {result.written} written, '
          f'{result.skipped} already done, {len(result.failures)} input(s) failed, '
          f'{len(result.converted)} converted; {len(result.complete_pairs)} (corruption, severity) pairs complete, '
          f'{len(result.incomplete_pairs)} incomplete')
    if result.failures:
        print('failed inputs:\n  ' + '\n  '.join(sorted(result.failures)), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
