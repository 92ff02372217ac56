"""fan_mm's built-in default job (see fan_mm/demo.py):

    python tools/demo.py                 # toy dataset -> train -> test clean + corrupted -> report
    python tools/demo.py --corruption fog --severity 5
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.demo import DEFAULT_CONFIG, DEMO_DATASET, DEMO_SCHEDULE, run_demo  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a FAN-Hybrid Mask R-CNN from scratch on a generated COCO-format dataset on the '
        'CPU, then test it clean and under one corruption, write the report and print the metrics')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/toy_coco_demo',
                        help='where the toy dataset is made (reused if complete)')
    parser.add_argument('--num-train', type=int, default=DEMO_DATASET['num_train'], help='generated train images')
    parser.add_argument('--num-val', type=int, default=DEMO_DATASET['num_val'], help='generated val images')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--corruption', default='gaussian_noise')
    parser.add_argument('--severity', type=int, default=5,
                        help='1..5; 5 by default, where noise visibly costs the toy detector accuracy')
    parser.add_argument('--max-iters', type=int, default=DEMO_SCHEDULE['iters'], help='training iterations')
    parser.add_argument('--batch-size', type=int, default=DEMO_SCHEDULE['batch_size'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true',
                        help='continue an interrupted training run in the work dir')
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's log on the console instead of progress bars")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from fan_mm.engine import NonFiniteLossError
    from fan_mm.engine.runner import CheckpointMismatchError
    from fan_mm.robustness.evaluation import RobustnessError
    try:
        run_demo(work_dir=args.work_dir, data_root=args.data_root, config=args.config,
                 corruption=args.corruption, severity=args.severity, max_iters=args.max_iters,
                 batch_size=args.batch_size, seed=args.seed, resume=args.resume, quiet=not args.verbose,
                 num_train=args.num_train, num_val=args.num_val)
    except (ValueError, FileNotFoundError, NonFiniteLossError, RobustnessError, CheckpointMismatchError) as err:
        print(f'demo: error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
