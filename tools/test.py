"""Evaluate a checkpoint with an mmdet or mmseg config (mmdet's tools/test.py arguments).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.engine.runner import (CheckpointMismatchError, checkpoint_cli_arguments,  # noqa: E402
                                common_cli_arguments, release_process_group, set_local_rank, test)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='mmdet: dump predictions to this .pkl file; '
                        'mmseg: save predicted maps in this directory')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='directory where painted images are saved '
                        '(inside the work dir\'s timestamped folder)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    checkpoint_cli_arguments(parser)
    common_cli_arguments(parser)
    args = parser.parse_args(argv)
    set_local_rank(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    from fan_mm.models.checkpoint_utils import CheckpointError
    try:
        metrics = test(args.config, args.checkpoint, work_dir=args.work_dir, out=args.out,
                       show=args.show, show_dir=args.show_dir, wait_time=args.wait_time,
                       tta=args.tta, cfg_options=args.cfg_options, launcher=args.launcher,
                       allow_partial_checkpoint=args.allow_partial_checkpoint, eager=args.no_compile)
    except (CheckpointMismatchError, CheckpointError, FileNotFoundError) as err:
        print(f'test: error: {err}', file=sys.stderr)
        sys.exit(2)
    release_process_group()
    return metrics


if __name__ == '__main__':
    main()
