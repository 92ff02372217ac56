r"""CPU time and disk space of a corrupted dataset, per (corruption, severity), measured on one
image and scaled to a dataset (see docs/benchmarks.md and docs/robustness.md, "Costs").

    python tools/analysis/benchmark_synthesis.py --kind photos --size 2048x1024 \
        --suite cityscapes-c --num-images 500 --json city.json
    python tools/analysis/benchmark_synthesis.py --kind photos --size 640x480 --suite coco-c --num-images 5000
    python tools/analysis/benchmark_synthesis.py --image my.png --suite cityscapes-c --num-images 500
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import cv2  # noqa: E402

from fan_mm.benchmarks import synthesis  # noqa: E402
from fan_mm.benchmarks.results import write_json  # noqa: E402
from fan_mm.datasets.toy import parse_size  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--image', help='image file (default: a test image of --kind and --size)')
    p.add_argument('--kind', default='photos', choices=['photos', 'cityscapes', 'coco'],
                   help='test image: a mosaic of real photos (default) or a toy scene')
    p.add_argument('--size', default='2048x1024', help='WxH of the test image (default 2048x1024)')
    p.add_argument('--suite', default='cityscapes-c')
    p.add_argument('--policy', default=None)
    p.add_argument('--severities', nargs='+', type=int)
    p.add_argument('--corruptions', nargs='+')
    p.add_argument('--num-images', type=int, default=500, help='dataset size to scale to (default 500)')
    p.add_argument('--also', nargs='+', metavar='SUITE[:POLICY]',
                   help='also scale to these measured subsets, e.g. cityscapes-c:noise-1-3 coco-c')
    p.add_argument('--json', help='write all measurements here')
    p.add_argument('--from-json', help='do not measure: print the scaling of an earlier --json run')
    args = p.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        synthesis.print_extrapolations(result, args.num_images, args.also)
        return
    cv2.setNumThreads(1)
    if args.image:
        img = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f'cannot read {args.image}')
    else:
        img = synthesis.toy_image(args.kind, parse_size(args.size, 'coco' if args.kind == 'photos' else args.kind))

    def show(r):
        print(f"{r['corruption']:>18} {r['severity']}  corrupt {r['corrupt_s']:7.3f} s  "
              f"png6 {r['png6']['bytes'] / 1e6:6.2f} MB {r['png6']['encode_s']:.3f} s  "
              f"png1 {r['png1']['bytes'] / 1e6:6.2f} MB {r['png1']['encode_s']:.3f} s  "
              f"jpeg95 {r['jpeg95']['bytes'] / 1e6:6.2f} MB  decode png6 {r['png6']['decode_s']:.3f} s", flush=True)

    result = synthesis.measure(img, args.suite, args.policy, args.severities, args.corruptions, progress=show)
    clean = result['clean']
    print(f"clean {img.shape[1]}x{img.shape[0]}: png6 {clean['png6']['bytes'] / 1e6:.2f} MB, png1 "
          f"{clean['png1']['bytes'] / 1e6:.2f} MB, jpeg95 {clean['jpeg95']['bytes'] / 1e6:.2f} MB; decode png6 "
          f"{clean['png6']['decode_s']:.3f} s")
    result['num_images'] = args.num_images
    result['extrapolated'] = synthesis.print_extrapolations(result, args.num_images, args.also)
    if args.json:
        write_json(args.json, result)


if __name__ == '__main__':
    main()
