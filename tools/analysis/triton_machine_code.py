r"""What fan_mm's Triton depthwise kernels compile to for a GPU architecture, read on any machine (no GPU
needed): registers, spills, resident warps, and what one iteration of each kernel's innermost loop executes
(see fan_mm.benchmarks.machine_code).

    python tools/analysis/triton_machine_code.py                      # the shipped launch settings, sm_90
    python tools/analysis/triton_machine_code.py --stream-launch 3=16,16,128,2 7=16,8,64,4
    python tools/analysis/triton_machine_code.py --capability 80 --dtype fp16 --json machine_code_sm80.json

Prints a Markdown table; ``--json`` also writes the result as JSON (toolchain versions included).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from fan_mm.benchmarks.machine_code import DTYPES, inspect_kernels, machine_code_table, shipped_variants
from fan_mm.benchmarks.results import write_json


def _stream_launch(text: str):
    try:
        k, setting = text.split('=')
        values = tuple(int(v) for v in setting.split(','))
        assert int(k) in (3, 7) and len(values) == 4 and min(values) > 0
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(
            f'{text!r}: KERNEL=ROWS,BLOCK_W,BLOCK_C,WARPS with KERNEL 3 or 7, e.g. 3=8,8,64,4')
    return int(k), values


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--capability', type=int, default=90,
                   help='compute capability to compile for, as major * 10 + minor (80: A100, 90: H100 and H200)')
    p.add_argument('--dtype', default='bf16', choices=sorted(DTYPES), help="the activations' dtype")
    p.add_argument('--stream-launch', nargs='+', type=_stream_launch, default=[], metavar='K=R,W,C,WARPS',
                   help="the streaming kernel's (rows, columns, channels, warps) for 3x3 or 7x7 instead of "
                        "the shipped STREAM_LAUNCH")
    p.add_argument('--json', help='JSON file for the result')
    args = p.parse_args(argv)
    if args.capability < 75:
        p.error(f'--capability {args.capability}: Triton compiles for compute capability 75 (7.5) and up')
    return args


def main(argv=None):
    args = parse_args(argv)
    from fan_mm.layers.depthwise_triton import STREAM_LAUNCH, triton_available
    if not triton_available():
        raise SystemExit('triton_machine_code: Triton is not installed (it comes with torch on Linux)')
    stream_launch = {**STREAM_LAUNCH, **dict(args.stream_launch)}
    try:
        result = inspect_kernels(shipped_variants(stream_launch), args.capability, args.dtype,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    except (ValueError, RuntimeError) as e:
        raise SystemExit(f'triton_machine_code: {e}')
    if args.json:
        write_json(args.json, result)
    print(machine_code_table(result))


if __name__ == '__main__':
    main()
