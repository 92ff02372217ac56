r"""Time a backbone's depthwise convolutions on each kernel route, with their errors against float64
(see fan_mm.benchmarks.depthwise).

    python tools/analysis/benchmark_depthwise.py                      # FAN-S-Hybrid, GPU, 2x3x896x896, bf16
    python tools/analysis/benchmark_depthwise.py --model fan_t_hybrid --routes channels_last inductor_taps
    python tools/analysis/benchmark_depthwise.py --cuda-graph --routes channels_last contiguous   # kernel time only
    python tools/analysis/benchmark_depthwise.py --device cpu --size 64 --batch 1 --warmup 1 --repeats 2 \
        --routes channels_last contiguous
    # how fan_mm's Triton depthwise kernels' launch settings were chosen (a CUDA device):
    python tools/analysis/benchmark_depthwise.py --sweep-triton 896x896 800x1344
    python tools/analysis/benchmark_depthwise.py --sweep-triton 896x896 800x1344 --kernel-sizes 3

Prints a Markdown table; ``--json`` also writes the result as JSON (settings and environment included).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from fan_mm.benchmarks.backbone import add_input_arguments
from fan_mm.benchmarks.depthwise import (ROUTES, depthwise_table, run_depthwise_benchmark, sweep_table,
                                         sweep_triton_launch)
from fan_mm.benchmarks.results import write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='fan_s_hybrid', help='a backbone name of benchmark_backbone.py')
    p.add_argument('--routes', nargs='+', default=list(ROUTES), choices=list(ROUTES))
    add_input_arguments(p, warmup=5, repeats=20)
    p.add_argument('--cuda-graph', action='store_true',
                   help='time replays of a CUDA graph of each call (as in compiled blocks): kernel time without '
                        'the launch and autograd overhead of eager calls')
    p.add_argument('--sweep-triton', nargs='+', metavar='HxW',
                   help="instead of the routes: time the Triton streaming kernel's launch settings on the depthwise "
                        "shapes the model runs at these input sizes (fan_mm.benchmarks.depthwise.sweep_triton_launch)")
    p.add_argument('--kernel-sizes', nargs='+', type=int, metavar='K',
                   help='with --sweep-triton: only the shapes of these kernel sizes (default: all the model runs)')
    p.add_argument('--json', help='JSON file for the result')
    args = p.parse_args(argv)
    if args.kernel_sizes and not args.sweep_triton:
        p.error('--kernel-sizes selects the shapes of --sweep-triton; give --sweep-triton too')
    if args.sweep_triton:
        try:
            args.sweep_triton = [tuple(int(v) for v in s.lower().split('x')) for s in args.sweep_triton]
            assert all(len(s) == 2 and min(s) > 0 for s in args.sweep_triton)
        except (ValueError, AssertionError):
            p.error(f'--sweep-triton: sizes as HxW, e.g. 896x896 800x1344, got {" ".join(argv or sys.argv[1:])}')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.sweep_triton:
        try:
            result = sweep_triton_launch(args.model, args.batch, args.sweep_triton, args.precision, args.device,
                                         args.warmup, args.repeats, log=lambda line: print(line, flush=True),
                                         kernel_sizes=args.kernel_sizes)
        except (ValueError, RuntimeError) as e:
            raise SystemExit(f'benchmark_depthwise: {e}')
        if args.json:
            write_json(args.json, result)
        print(sweep_table(result))
        return
    try:
        result = run_depthwise_benchmark(args.model, args.batch, args.size, args.precision, args.device,
                                         args.routes, args.warmup, args.repeats,
                                         log=lambda r: print(r, flush=True), cuda_graph=args.cuda_graph)
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f'benchmark_depthwise: {e}')
    if args.json:
        write_json(args.json, result)
    print(depthwise_table(result))


if __name__ == '__main__':
    main()
