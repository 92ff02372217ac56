"""fan_mm's built-in default job (see fan_mm/apis/demo.py):

    python tools/demo.py                 # toy dataset -> train -> test clean + corrupted
    python tools/demo.py --corruption fog --severity 5 --max-iters 300
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.apis.demo import DEFAULT_CONFIG, run_demo  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a FAN-Hybrid Mask R-CNN on a generated COCO-format dataset on the '
        'CPU, then test it clean and under one corruption and print the metrics')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/toy_coco',
                        help='where the toy dataset is made (reused if complete)')
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--corruption', default='gaussian_noise')
    parser.add_argument('--severity', type=int, default=3)
    parser.add_argument('--max-iters', type=int, default=None,
                        help='training iterations (default: the config\'s)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--resume', action='store_true',
                        help='continue an interrupted training run in the work dir')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run_demo(work_dir=args.work_dir, data_root=args.data_root, config=args.config,
             corruption=args.corruption, severity=args.severity, max_iters=args.max_iters,
             seed=args.seed, resume=args.resume)


if __name__ == '__main__':
    main()
