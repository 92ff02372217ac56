r"""Evaluate a checkpoint on the clean test set and every (corruption, severity) of a suite.

    python tools/test_robustness.py CONFIG CHECKPOINT --suite cityscapes-c --policy noise-1-3 \
        --corrupted-root data/cityscapes-c --work-dir work_dirs/fan_city_c
    python tools/test_robustness.py CONFIG CHECKPOINT --suite coco-c --on-the-fly --work-dir work_dirs/coco_c
    python tools/test_robustness.py CONFIG CHECKPOINT --suite cityscapes-c --on-the-fly \
        --shifts acdc=data/acdc foggy_cityscapes=data/cityscapes dark_zurich=data/dark_zurich --work-dir ...
    bash tools/dist_test_robustness.sh CONFIG CHECKPOINT 8 --suite coco-c --corrupted-root data/coco-c ...

Writes WORK_DIR/robustness.json after every run; run it again to finish an interrupted
evaluation. Then: python tools/robustness_report.py WORK_DIR/robustness.json --out REPORT_DIR
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.engine.runner import (checkpoint_cli_arguments, common_cli_arguments, release_process_group,  # noqa: E402
                                set_local_rank)
from fan_mm.datasets.real_shift import SHIFT_SETS  # noqa: E402
from fan_mm.robustness import protocol  # noqa: E402


def parse_shifts(parser, items):
    """['acdc=data/acdc', 'coco_o'] -> {'acdc': 'data/acdc', 'coco_o': 'data/coco_o'} (names checked)."""
    shifts = {}
    for item in items:
        name, _, root = item.partition('=')
        if name not in SHIFT_SETS:
            parser.error(f'--shifts: unknown real-shift set {name!r}; choose from {", ".join(sorted(SHIFT_SETS))}')
        if name in shifts:
            parser.error(f'--shifts: {name!r} is given twice')
        shifts[name] = root or osp.join('data', name)
    return shifts


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Robustness evaluation: clean + every (corruption, severity) with one built model; '
                    'results in WORK_DIR/robustness.json (resumable).')
    parser.add_argument('config', help='mmdet or mmseg test config')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--suite', help=f'corruption suite: {", ".join(protocol.suite_names())} '
                                        '(optional with --shifts)')
    parser.add_argument('--corruptions', nargs='+', metavar='NAME', help='subset of the suite (default: all)')
    sev = parser.add_mutually_exclusive_group()
    sev.add_argument('--severities', nargs='+', type=int, metavar='S', help='severities (1..5) for every corruption')
    sev.add_argument('--policy', help=f'severity policy: {", ".join(protocol.policy_names())} (default 1-5)')
    src = parser.add_mutually_exclusive_group()
    src.add_argument('--corrupted-root', metavar='DIR', help='corrupted copy written by make_corrupted_dataset.py')
    src.add_argument('--on-the-fly', action='store_true', help='corrupt images in the pipeline (CorruptImage)')
    parser.add_argument('--seed', type=int, help='base seed of the per-image seeds (on the fly; default 0)')
    parser.add_argument('--channel-order', choices=list(protocol.PROTOCOL_CHANNEL_ORDERS),
                        help='on the fly: rgb (default) or bgr_legacy (the BGR array corrupted as if RGB: '
                             'mmdet\'s Corrupt and NVlabs\' generators, the published protocols; 10 of the 19 '
                             'corruptions differ, see docs/robustness.md)')
    parser.add_argument('--shifts', nargs='+', metavar='NAME=DIR', default=[],
                        help='real-shift test sets and where they are laid out, e.g. acdc=data/acdc '
                             f'(names: {", ".join(sorted(SHIFT_SETS))}; default folders: data/<name>); '
                             'see docs/real_shift.md')
    parser.add_argument('--work-dir', required=True, help='where robustness.json and the logs go')
    checkpoint_cli_arguments(parser)
    common_cli_arguments(parser)
    args = parser.parse_args(argv)
    if args.suite and not (args.corrupted_root or args.on_the_fly):
        parser.error('--suite needs one of --corrupted-root DIR and --on-the-fly')
    if not args.suite and not args.shifts:
        parser.error('give a corruption suite (--suite) or real-shift sets (--shifts), or both')
    if not args.suite:
        needs_suite = [flag for flag, value in (
            ('--corruptions', args.corruptions), ('--severities', args.severities), ('--policy', args.policy),
            ('--corrupted-root', args.corrupted_root), ('--on-the-fly', args.on_the_fly), ('--seed', args.seed),
            ('--channel-order', args.channel_order)) if value not in (None, False)]
        if needs_suite:
            parser.error(f'{", ".join(needs_suite)}: only with a corruption suite (--suite); the real-shift sets '
                         'are real images')
    args.shifts = parse_shifts(parser, args.shifts)
    set_local_rank(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    from fan_mm.engine.runner import CheckpointMismatchError
    from fan_mm.robustness.evaluation import RobustnessError, evaluate_robustness
    from fan_mm.robustness.synthesis import SynthesisError
    from fan_mm.models.checkpoint_utils import CheckpointError
    try:
        evaluate_robustness(
            args.config, args.checkpoint, args.suite, args.work_dir, corrupted_root=args.corrupted_root,
            on_the_fly=args.on_the_fly, corruptions=args.corruptions, policy=args.policy,
            severities=args.severities, seed=args.seed, channel_order=args.channel_order,
            cfg_options=args.cfg_options, launcher=args.launcher,
            allow_partial_checkpoint=args.allow_partial_checkpoint, shifts=args.shifts, eager=args.no_compile)
    except (RobustnessError, SynthesisError, protocol.ProtocolError, FileNotFoundError, CheckpointMismatchError,
            CheckpointError) as e:
        print(f'test_robustness: error: {e}', file=sys.stderr)
        return 2
    release_process_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
