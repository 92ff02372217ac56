"""Train an mmdet or mmseg model from a config (mmdet's tools/train.py arguments).

    python tools/train.py configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py
    python tools/train.py CONFIG --work-dir work_dirs/x --amp --resume
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.models.checkpoint_utils import CheckpointError  # noqa: E402
from fan_mm.engine.runner import (CheckpointMismatchError, common_cli_arguments,  # noqa: E402
                                release_process_group, set_local_rank, train)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (AmpOptimWrapper, fp16 by default)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by the ratio of the real batch size to '
                        'auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from this checkpoint, or, with no value, from the '
                        'latest checkpoint in the work dir')
    common_cli_arguments(parser)
    args = parser.parse_args(argv)
    set_local_rank(args.local_rank)
    return args


def main(argv=None):
    args = parse_args(argv)
    from fan_mm.engine import NonFiniteLossError
    try:
        train(args.config, work_dir=args.work_dir, amp=args.amp,
              auto_scale_lr=args.auto_scale_lr, resume=args.resume,
              cfg_options=args.cfg_options, launcher=args.launcher, eager=args.no_compile)
    except NonFiniteLossError as err:
        print(f'train: error: {err}', file=sys.stderr)
        sys.exit(3)
    except (CheckpointMismatchError, CheckpointError) as err:  # --resume: a file this model cannot continue
        print(f'train: error: {err}', file=sys.stderr)
        sys.exit(2)
    release_process_group()


if __name__ == '__main__':
    main()
