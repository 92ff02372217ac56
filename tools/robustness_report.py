r"""Tables (Markdown, CSV, LaTeX, JSON) and plots from robustness.json files, as in the FAN paper.

    python tools/robustness_report.py work_dirs/fan_city_c/robustness.json work_dirs/segformer/robustness.json \
        --names FAN-S-Hybrid SegFormer-B2 --out reports/city_c
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout

from fan_mm.robustness import protocol  # noqa: E402
from fan_mm.robustness.report import ReportError, write_report  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Per-corruption tables grouped by category (FAN Tables 13/14), several models side by side '
                    '(Tables 9/10), mPC / rPC / retention, plots. Each table states its protocol (suite, policy, '
                    'channel order, image format, seed, corruption engine) and the published table made under '
                    'the same one; results files made under different protocols are refused in one table.')
    parser.add_argument('results', nargs='+', help='robustness.json files (one per model)')
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--names', nargs='+', help='model names, one per results file (default: config names)')
    parser.add_argument('--metric', nargs='+', dest='metrics',
                        help='metric keys (default: mIoU for mmseg, coco/bbox_mAP and coco/segm_mAP for mmdet)')
    parser.add_argument('--suite', help='report on this suite (default: the evaluated one)')
    parser.add_argument('--corruptions', nargs='+', help='report on this subset of the suite')
    sev = parser.add_mutually_exclusive_group()
    sev.add_argument('--policy', help=f'severity policy: {", ".join(protocol.policy_names())} (default: recorded)')
    sev.add_argument('--severities', nargs='+', type=int, help='explicit severities for every corruption')
    parser.add_argument('--formats', nargs='+', default=['md', 'csv', 'tex', 'json', 'png'],
                        help='any of md csv tex json png (default: all)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        written = write_report(args.results, args.out, names=args.names, metrics=args.metrics, suite=args.suite,
                               policy=args.policy, severities=args.severities, corruptions=args.corruptions,
                               formats=args.formats)
    except (ReportError, protocol.ProtocolError) as e:
        print(f'robustness_report: error: {e}', file=sys.stderr)
        return 2
    for path in written.get('md', []):
        with open(path, encoding='utf-8') as f:
            print(f.read())
    print('wrote ' + ', '.join(p for paths in written.values() for p in paths), file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
