"""CPU time and disk space of a corrupted dataset, per (corruption, severity), measured on one
image and scaled to a dataset (see docs/robustness.md, "Costs").

    python tools/analysis/benchmark_synthesis.py --kind photos --size 2048x1024 \\
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

from fan_mm.datasets import synthesis_cost  # noqa: E402
from fan_mm.datasets.toy import parse_size  # noqa: E402


def _print_extrapolations(result, num_images, also):
    from fan_mm.robustness import protocol
    plans = [(f"{result['suite']} {result['policy']} (measured)", None)]
    for item in also or []:
        suite, _, policy = item.partition(':')
        plans.append((f'{suite} {policy or "1-5"}', protocol.severity_plan(suite, policy=policy or None)[1]))
    out = {}
    for label, plan in plans:
        for enc in ('png6', 'png1', 'jpeg95'):
            e = synthesis_cost.extrapolate(result, num_images, enc, plan)
            out[f'{label} {enc}'] = e
            print(f"{label}: {num_images} images x {e['variants']} variants, {enc}: synthesis "
                  f"{e['cpu_hours_to_synthesize']:.2f} CPU-h, disk {e['disk_gb']:.1f} GB (clean {e['clean_gb']:.2f} GB); "
                  f"one evaluation on the fly {e['cpu_hours_per_evaluation_on_the_fly']:.2f} CPU-h of corruption, "
                  f"from disk {e['cpu_hours_per_evaluation_extra_from_disk']:+.3f} CPU-h of decoding beyond the clean "
                  'PNG')
    return out


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
        _print_extrapolations(result, args.num_images, args.also)
        return
    cv2.setNumThreads(1)
    if args.image:
        img = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f'cannot read {args.image}')
    else:
        img = synthesis_cost.toy_image(args.kind, parse_size(args.size, 'coco' if args.kind == 'photos' else args.kind))

    def show(r):
        print(f"{r['corruption']:>18} {r['severity']}  corrupt {r['corrupt_s']:7.3f} s  "
              f"png6 {r['png6']['bytes'] / 1e6:6.2f} MB {r['png6']['encode_s']:.3f} s  "
              f"png1 {r['png1']['bytes'] / 1e6:6.2f} MB {r['png1']['encode_s']:.3f} s  "
              f"jpeg95 {r['jpeg95']['bytes'] / 1e6:6.2f} MB  decode png6 {r['png6']['decode_s']:.3f} s", flush=True)

    result = synthesis_cost.measure(img, args.suite, args.policy, args.severities, args.corruptions, progress=show)
    clean = result['clean']
    print(f"clean {img.shape[1]}x{img.shape[0]}: png6 {clean['png6']['bytes'] / 1e6:.2f} MB, png1 "
          f"{clean['png1']['bytes'] / 1e6:.2f} MB, jpeg95 {clean['jpeg95']['bytes'] / 1e6:.2f} MB; decode png6 "
          f"{clean['png6']['decode_s']:.3f} s")
    result['num_images'] = args.num_images
    result['extrapolated'] = _print_extrapolations(result, args.num_images, args.also)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)


if __name__ == '__main__':
    main()
