"""Which corruptions depend on the channel order: mean / max absolute difference (grey levels)
between the ``rgb`` protocol and ``bgr_legacy`` (a BGR array corrupted as if it were RGB, as
mmdet's ``Corrupt`` and NVlabs' COCO-C / Cityscapes-C generators did), per corruption.

    python tools/analysis/channel_order_difference.py --image rocket --size 160x120 --severity 3

A corruption is listed as channel-order dependent when its difference is not exactly 0; see
docs/corruptions.md ("Channel order") and ``fan_mm.corruptions.api.CHANNEL_ORDER_DEPENDENT``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from fan_mm.analysis.channel_order import channel_order_differences  # noqa: E402
from fan_mm.benchmarks.corruptions import benchmark_image, parse_size  # noqa: E402
from fan_mm.corruptions.api import CHANNEL_ORDER_DEPENDENT  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--image', default='rocket', help='skimage.data photo name or image path (default rocket)')
    p.add_argument('--size', default='160x120', help="WIDTHxHEIGHT (default 160x120), or 'native'")
    p.add_argument('--severity', type=int, default=3, help='severity 1..5 (default 3)')
    p.add_argument('--seed', type=int, default=0, help='seed of both runs (default 0)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    size = None if args.size == 'native' else parse_size(args.size)
    diffs = channel_order_differences(benchmark_image(args.image, size), args.severity, args.seed)
    print(f"{'corruption':<18} {'mean':>8} {'max':>4}  listed as dependent")
    for name, (mean, top) in diffs.items():
        print(f'{name:<18} {mean:8.4f} {top:4d}  {"yes" if name in CHANNEL_ORDER_DEPENDENT else "no"}')
    measured = {n for n, (mean, _) in diffs.items() if mean > 0}
    if measured != set(CHANNEL_ORDER_DEPENDENT):
        print(f'differs from CHANNEL_ORDER_DEPENDENT: measured only {sorted(measured - set(CHANNEL_ORDER_DEPENDENT))}, '
              f'listed only {sorted(set(CHANNEL_ORDER_DEPENDENT) - measured)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
