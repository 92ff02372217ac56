"""Train the FAN toy configs from scratch beside a ResNet-50 control and print both (docs/from_scratch.md).

    python tools/analysis/train_from_scratch.py det                 # Mask R-CNN: FAN-T-Hybrid vs ResNet-50
    python tools/analysis/train_from_scratch.py det --amp           # the same in fp16
    python tools/analysis/train_from_scratch.py seg --parallel 4    # SegFormer / UPerNet / SETR vs UPerNet R50

Defaults are the GPU check of the docs: 400 generated train images, 100 val, batch 8, 600 iterations.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from fan_mm.from_scratch import TASKS, compare_from_scratch, default_runs  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('task', choices=sorted(TASKS), help='det: Mask R-CNN on toy COCO; seg: toy Cityscapes')
    parser.add_argument('--work-dir', default=None, help='default: work_dirs/from_scratch_<task>[_amp]')
    parser.add_argument('--data-root', default=None, help='toy dataset folder (made if missing)')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--iters', type=int, default=600)
    parser.add_argument('--lr', type=float, default=None, help="default: each config's own")
    parser.add_argument('--amp', action='store_true', help='mixed precision (fp16) for every run')
    parser.add_argument('--parallel', type=int, default=1, help='runs trained at the same time')
    parser.add_argument('--workers', type=int, default=2, help='dataloader workers per run')
    parser.add_argument('--only', nargs='+', help='runs whose name contains one of these words')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='settings for the FAN runs only (not the control), e.g. model.backbone.out_norm=False')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    work_dir = args.work_dir or f'work_dirs/from_scratch_{args.task}' + ('_amp' if args.amp else '')
    runs = default_runs(args.task, args.only, args.cfg_options)
    compare_from_scratch(args.task, work_dir, data_root=args.data_root, num_train=args.num_train,
                         num_val=args.num_val, batch_size=args.batch_size, iters=args.iters, lr=args.lr,
                         amp=args.amp, parallel=args.parallel, workers=args.workers, runs=runs)


if __name__ == '__main__':
    main()
