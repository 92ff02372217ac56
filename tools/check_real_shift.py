"""Check that a real-shift test set is laid out as fan_mm reads it (see docs/real_shift.md).

    python tools/check_real_shift.py acdc data/acdc
    python tools/check_real_shift.py foggy_cityscapes data/cityscapes --conditions 0.02
    python tools/check_real_shift.py coco_o data/ood_coco

Prints, per condition, how many images are usable and what is missing or malformed, by name; exits 1 if
anything is. ``--make-sample`` writes a few generated images in the official layout instead (for trying
the tools without the download).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout
from fan_mm.datasets.real_shift import SHIFT_SETS, check_shift_set, make_shift_sample  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Report what is missing or malformed in a real-shift test set.')
    parser.add_argument('name', choices=sorted(SHIFT_SETS), help='which set')
    parser.add_argument('data_root', help='the folder that holds the set in its official layout')
    parser.add_argument('--conditions', nargs='+', default=None,
                        help='conditions to check (default: all of the set)')
    parser.add_argument('--skip-label-values', action='store_true',
                        help='do not read every label map to check its train IDs (faster)')
    parser.add_argument('--make-sample', action='store_true',
                        help='write a small generated sample in the official layout to DATA_ROOT instead')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    shift = SHIFT_SETS[args.name]
    if args.make_sample:
        make_shift_sample(args.name, args.data_root)
        print(f'{shift.title}: generated sample written to {args.data_root}')
    try:
        report = check_shift_set(args.name, args.data_root, args.conditions, check_labels=not args.skip_label_values)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    bad = 0
    for condition, result in report.items():
        label = shift.condition_label(condition)
        status = 'ok' if not result['problems'] else 'PROBLEMS'
        print(f'{shift.title} / {label}: {result["images"]} images, {status}')
        for problem in result['problems']:
            print(f'  - {problem}')
        bad += bool(result['problems'])
    if bad:
        print(f'{bad} of {len(report)} conditions have problems; source: {shift.source}', file=sys.stderr)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
