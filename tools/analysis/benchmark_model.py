r"""Time whole mmdet / mmseg models from configs (random weights, synthetic batch) in one run.

    python tools/analysis/benchmark_model.py                  # Mask R-CNN FAN-S-Hybrid vs mmdet Swin-T, fp16
    python tools/analysis/benchmark_model.py --configs fan=configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py \
        swin=mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py --reference swin --precision fp32
    python tools/analysis/benchmark_model.py --compile-backbone cudagraph   # Swin-T with CUDA graphs too
    python tools/analysis/benchmark_model.py --profile fan_s_hybrid swin_t   # where the iterations' time goes
    python tools/analysis/benchmark_model.py --phases fan_s_hybrid swin_t    # ... on the host, part by part
    python tools/analysis/benchmark_model.py --configs fan_s_hybrid=configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py \
        fan_s_hybrid+eager=configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py swin_t=mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py
    python tools/analysis/benchmark_model.py --precision bf16 --height 1024 --width 1024 --reference segformer \
        --configs segformer=configs/fan/segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py \
        segformer+whole=configs/fan/segformer_fan_s_hybrid_cityscapes_1024x1024_160k.py  # backbone as one graph
    python tools/analysis/benchmark_model.py --configs fan_s_hybrid=configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py \
        fan_s_hybrid+per_param=configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py \
        swin_t=mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py \
        swin_t+merged=mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py   # what the optimizer's layout costs
    python tools/analysis/benchmark_model.py --configs toy=configs/toy/maskrcnn_fan_t_hybrid_toy_coco.py \
        --device cpu --height 64 --width 64 --batch 1 --warmup 1 --repeats 1

Training iterations run as mmengine's runner runs them: the loss forward inside the config's optim_wrapper,
its backward and its step, with the config's parameter groups, optimizer, clip_grad and accumulative_counts
(fp16 / bf16: an AmpOptimWrapper of that dtype, on GPUs only; mmcv's RoIAlign has no bf16 CUDA kernel, so use
fp16 or fp32 for detectors).
"""
import argparse
import sys

from mmengine.config import DictAction

from fan_mm.benchmarks.model import run_model_benchmark
from fan_mm.benchmarks.precision import PRECISIONS
from fan_mm.benchmarks.results import write_result

DEFAULT_CONFIGS = ['fan_s_hybrid=configs/fan/maskrcnn_fan_s_hybrid_3x_coco.py',
                   'swin_t=mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py']


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS,
                   help="NAME=CONFIG entries; NAME+eager runs its config without the backbone's "
                        "compile_blocks, NAME+whole with the backbone compiled as one graph (compile_blocks' "
                        "scope='backbone'); NAME+per_param with the optimizer's parameter groups as mmengine lays "
                        "them out (one per parameter, foreach), NAME+merged with them merged and fused "
                        "(NoDecayOptimWrapperConstructor, as fan_mm's configs run); NAME+triton with the backbone's "
                        "compile_blocks depthwise='triton' (its depthwise convs on fan_mm's Triton kernels, CUDA); "
                        "tags combine (NAME+eager+merged)")
    p.add_argument('--reference', default='swin_t', help='NAME the ratios are taken against ("" for none)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--height', type=int, default=800)
    p.add_argument('--width', type=int, default=1344)
    p.add_argument('--boxes', type=int, default=12, help='ground-truth boxes (with masks) per image')
    p.add_argument('--precision', choices=list(PRECISIONS),
                   help='autocast dtype (default: fp16 on GPU, as AmpOptimWrapper; fp32 on CPU)')
    p.add_argument('--device', default='cuda')
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--compile-backbone', nargs='?', const='default', choices=['default', 'cudagraph'],
                   help='torch.compile every block of the backbones that their config leaves eager (in place; '
                        'static shapes: the input size is fixed), "cudagraph": with mode="reduce-overhead", to '
                        'compare peers like for like with fan_mm configs, which use CUDA graphs on a GPU')
    p.add_argument('--no-compile', action='store_true',
                   help="every config without its backbone's compile_blocks (a NAME ending in +eager does "
                        'this for one config)')
    p.add_argument('--profile', nargs='+', default=[], metavar='NAME',
                   help='profile the training iteration of these configs after timing them: operators, GPU '
                        'kernels by kind, GPU busy time against the iteration (torch.profiler)')
    p.add_argument('--phases', nargs='+', default=[], metavar='NAME',
                   help="time the training iteration of these configs part by part on the host after timing "
                        'them: wall time and GPU synchronisations of the backbone, neck, heads, backward and '
                        'optimizer step')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override settings of every config')
    p.add_argument('--json', help='write the result here')
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    if a.precision is None:
        a.precision = 'fp32' if a.device == 'cpu' else 'fp16'
    pairs = []
    for entry in a.configs:
        name, sep, config = entry.partition('=')
        if not sep or not name or not config:
            sys.exit(f'benchmark_model: --configs entry {entry!r} must be NAME=CONFIG')
        pairs.append((name, config))
    try:
        result = run_model_benchmark(pairs, a.batch, a.height, a.width, a.boxes, a.precision, a.device,
                                     a.warmup, a.repeats, reference=a.reference or None,
                                     cfg_options=a.cfg_options, compile_backbone=a.compile_backbone,
                                     eager=a.no_compile, profile=a.profile,
                                     phases=a.phases)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        sys.exit(f'benchmark_model: {e}')
    print(write_result(result, a.json))


if __name__ == '__main__':
    main()
