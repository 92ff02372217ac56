r"""Time fan_mm's corruptions against imagecorruptions 1.1.2 (patched in memory), side by side.

    taskset -c 0 env OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 \
        python tools/analysis/benchmark_corruptions.py --size 2048x1024 --suite cityscapes-c \
        --severities 1,2,3,4,5 --repeats 3 --json bench.json

Both implementations run single-threaded (OpenCV is limited with --threads); pin the process
to one core with taskset as above.  --no-reference times fan_mm alone; --from-json A.json
B.json prints the combined table of earlier runs.
"""
import argparse
import sys

from fan_mm.benchmarks import corruptions as B
from fan_mm.corruptions import SUITES


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--image', default='astronaut',
                   help='skimage.data photo name or image path (default astronaut)')
    p.add_argument('--size', default='2048x1024', help="WIDTHxHEIGHT, or 'native'")
    p.add_argument('--suite', default='cityscapes-c', choices=list(SUITES))
    p.add_argument('--corruptions', default='', help='comma-separated names (default: suite)')
    p.add_argument('--severities', default='1,2,3,4,5')
    p.add_argument('--repeats', type=int, default=1, help='runs per side; the fastest counts')
    p.add_argument('--reference-repeat-limit', type=float, default=20.0,
                   help='do not repeat a 1.1.2 run that took longer than this (seconds)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=1, help='cv2.setNumThreads (default 1)')
    p.add_argument('--no-reference', action='store_true', help='time fan_mm only')
    p.add_argument('--json', default='', help='write all timings to this JSON file')
    p.add_argument('--from-json', nargs='+', default=None, metavar='JSON',
                   help='print the table of earlier runs (concatenated) instead of running')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        try:
            print(B.format_table(B.read_rows(args.from_json)))
        except (OSError, ValueError, KeyError) as e:
            print(f'error: cannot read {args.from_json}: {e}', file=sys.stderr)
            return 2
        return 0
    import cv2
    cv2.setNumThreads(args.threads)
    try:
        size = None if args.size == 'native' else B.parse_size(args.size)
        severities = [int(s) for s in args.severities.split(',') if s.strip()]
        B.benchmark_and_report(args.image, size, args.suite, args.corruptions, severities, args.repeats,
                               args.seed, reference=not args.no_reference,
                               reference_repeat_limit_s=args.reference_repeat_limit, json_path=args.json,
                               print_fn=lambda line: print(line, flush=True))
    except (OSError, ValueError, TypeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
