r"""Time fan_mm dense backbones against timm's Swin and ConvNeXt in one run (see fan_mm.benchmarks.backbone).

    python tools/analysis/benchmark_backbone.py                       # GPU, 2x3x896x896, bf16, all models
    python tools/analysis/benchmark_backbone.py --models fan_s_hybrid fan_s_hybrid+cl swin_t --precision fp32
    python tools/analysis/benchmark_backbone.py --device cpu --size 64 --batch 1 --warmup 1 --repeats 2
    # against the official NVlabs code (a clone of github.com/NVlabs/FAN; its timm in a folder of its own),
    # timed in a second process; both processes time torchvision's Swin-T, and the ratios go through it
    pip install --target /tmp/timm054 --no-deps timm==0.5.4
    python tools/analysis/benchmark_backbone.py --official-checkout ../FAN --official-timm /tmp/timm054 \
        --models official_fan_s_hybrid official_fan_s_hybrid+cp fan_s_hybrid fan_s_hybrid+cudagraph \
        --reference tv_swin_t
"""
import argparse
import sys

from fan_mm.benchmarks.backbone import (BACKBONES, DEFAULT_BACKBONES, FLAGS, add_input_arguments,
                                       run_backbone_benchmark)
from fan_mm.benchmarks.results import write_result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(DEFAULT_BACKBONES),
                   help=f'backbones, each NAME[+FLAG...]; names: {sorted(BACKBONES)}; flags: {list(FLAGS)} '
                        '(channels_last, activation checkpointing, torch.compile of each block, of the whole '
                        'backbone, block compilation with CUDA graphs, the 7x7 depthwise convs on fan_mm\'s '
                        'Triton kernels)')
    p.add_argument('--reference', default='swin_t', help='spec the ratios are taken against ("" for none)')
    add_input_arguments(p, warmup=10, repeats=30)
    p.add_argument('--profile', nargs='*', default=[], help='specs to profile (top ops of a train step)')
    p.add_argument('--census', nargs='*', default=[],
                   help='specs whose forward casts, saved-for-backward bytes, train-step operations and FLOPs '
                        'are counted (any device)')
    p.add_argument('--official-checkout', help='a clone of NVlabs/FAN, for the official_* models')
    p.add_argument('--official-timm', help='a folder holding the timm the official code was written for (0.5.4), '
                   'put first on the path of the official models\' process')
    p.add_argument('--json', help='write the result here')
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    try:
        result = run_backbone_benchmark(a.models, a.batch, a.size, a.precision, a.device, a.warmup, a.repeats,
                                        reference=a.reference or None, profile=a.profile,
                                        census=a.census, official_checkout=a.official_checkout,
                                        official_timm=a.official_timm)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f'benchmark_backbone: {e}')
    print(write_result(result, a.json))


if __name__ == '__main__':
    main()
