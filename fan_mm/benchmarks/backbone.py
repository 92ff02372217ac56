"""Speed and memory of dense backbones: fan_mm's and timm's Swin / ConvNeXt side by side in one process.

A train step is forward + backward of the mean of every output map; inference runs under
``torch.inference_mode``. Timing (median of the repeats after warm-up) and peak memory as in
:mod:`fan_mm.benchmarks.timing`: ``torch.cuda.max_memory_allocated`` over the timed steps (weights,
gradients and optimizer state included; 0 on CPU), and ``torch.cuda.max_memory_reserved`` (what the
process holds on the GPU, the caching allocator's slack included), the figure that counts the private
memory pools of CUDA graphs, which the former misses.

Backbone specs are a name from ``BACKBONES`` optionally followed by ``+flag`` modifiers:
``+cl`` (channels_last input and weights), ``+cp`` (activation checkpointing), ``+compile``
(``torch.compile`` of every trunk block, as the backbones' ``compile_blocks=True`` does; the same for
timm models), ``+compile_full`` (one ``torch.compile`` of the whole backbone; fan_mm's backbones through
``compile_blocks=dict(scope='backbone')``, what a config can set), ``+cudagraph`` (block
compilation with ``mode='reduce-overhead'``: CUDA graphs; with ``+compile_full``, the whole backbone as
one CUDA graph per pass), e.g. ``fan_s_hybrid+cl+compile``.
"""
import math
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from fan_mm.utils.compile_stats import CompileStats
from fan_mm.utils.environment import collect_environment
from .precision import PRECISIONS, autocast, check_precision, prepare_device
from .profiling import profile_steps
from .timing import time_fn

FLAGS = ('cl', 'cp', 'compile', 'compile_full', 'cudagraph', 'triton7', 'triton')
# +triton7: the 7x7 depthwise convs (FAN-Hybrid's ConvNeXt stem) run fan_mm's Triton kernels; +triton: all of them


# ---- backbones ----------------------------------------------------------------------------------
def _fan_dense(cls_name: str, **kwargs) -> Callable[[], nn.Module]:
    def build(**options):
        from fan_mm.models import backbones
        return getattr(backbones, cls_name)(**kwargs, **options)
    build.dense = True  # compiled through its own compile_blocks, as the configs do
    return build


def _timm_features(name: str, **kwargs) -> Callable[[int], nn.Module]:
    def build(img_size: int):
        import timm

        import fan_mm.models  # noqa: F401  (registers fan_mm's timm models: lvvit_*, fan_swin_*)
        extra = dict(kwargs)
        if name.startswith(('swin', 'fan_swin', 'lvvit')):
            extra['img_size'] = img_size
        return _Intermediates(timm.create_model(name, pretrained=False, **extra))
    build.needs_size = True
    return build


class _Intermediates(nn.Module):
    """A timm model read as a dense backbone: all its ``forward_intermediates`` maps (NCHW)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.forward_intermediates(x, intermediates_only=True)

    def set_grad_checkpointing(self, enable=True):
        self.model.set_grad_checkpointing(enable)


class _TorchvisionStages(nn.Module):
    """A torchvision classifier read as a dense backbone: the output of each of its four stages (NCHW)."""

    def __init__(self, name: str):
        super().__init__()
        import torchvision
        model = getattr(torchvision.models, name)(weights=None)
        if name.startswith('swin'):  # features: patch embed, stage, merge, stage, ...; NHWC maps
            self.stages = nn.ModuleList([model.features[0:2], model.features[2:4], model.features[4:6],
                                         model.features[6:8]])
            self.nhwc = True
        else:
            self.stages = nn.ModuleList([nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                                                       model.layer1), model.layer2, model.layer3, model.layer4])
            self.nhwc = False

    def forward(self, x):
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x.permute(0, 3, 1, 2) if self.nhwc else x)
        return outs


def _torchvision(name: str) -> Callable[[], nn.Module]:
    return lambda: _TorchvisionStages(name)


def _official(name: str) -> Callable[[], nn.Module]:
    def build():
        import os
        from .official import CHECKOUT_ENV, build_official
        checkout = os.environ.get(CHECKOUT_ENV)
        if not checkout:
            raise ValueError(f'{name}: the official backbones need a checkout of NVlabs/FAN (--official-checkout)')
        return build_official(name, checkout)
    return build


# name -> (label, builder). fan_mm entries are the mmdet/mmseg backbones the configs build (detection
# layout for the hybrids); timm entries read every stage through forward_intermediates.
BACKBONES: Dict[str, Tuple[str, Callable]] = {
    'fan_t_hybrid': ('FAN-T-Hybrid (fan_mm FANHybrid)', _fan_dense('FANHybrid', arch='tiny')),
    'fan_s_hybrid': ('FAN-S-Hybrid (fan_mm FANHybrid)', _fan_dense('FANHybrid', arch='small')),
    'fan_b_hybrid': ('FAN-B-Hybrid (fan_mm FANHybrid)', _fan_dense('FANHybrid', arch='base')),
    'fan_s_vit': ('FAN-S-ViT (fan_mm FANViT, pyramid)', _fan_dense('FANViT', arch='small')),
    'fan_swin_t': ('FAN-Swin-T (fan_mm FANSwin)', _fan_dense('FANSwin', arch='tiny')),
    'lvvit_s': ('LV-ViT-S (fan_mm LVViT, UperNet side layers)', _fan_dense('LVViT', arch='small')),
    'swin_t': ('Swin-T (timm)', _timm_features('swin_tiny_patch4_window7_224')),
    'swin_s': ('Swin-S (timm)', _timm_features('swin_small_patch4_window7_224')),
    'convnext_t': ('ConvNeXt-T (timm)', _timm_features('convnext_tiny')),
    'convnext_s': ('ConvNeXt-S (timm)', _timm_features('convnext_small')),
    # references that need no timm: the same model in every process (see run_backbone_benchmark)
    'tv_swin_t': ('Swin-T (torchvision)', _torchvision('swin_t')),
    'tv_resnet50': ('ResNet-50 (torchvision)', _torchvision('resnet50')),
    # the official NVlabs detection backbones, from a checkout (fan_mm.benchmarks.official)
    'official_fan_t_hybrid': ('FAN-T-Hybrid (official NVlabs detection code)', _official('official_fan_t_hybrid')),
    'official_fan_s_hybrid': ('FAN-S-Hybrid (official NVlabs detection code)', _official('official_fan_s_hybrid')),
    'official_fan_b_hybrid': ('FAN-B-Hybrid (official NVlabs detection code)', _official('official_fan_b_hybrid')),
    'official_fan_l_hybrid': ('FAN-L-Hybrid (official NVlabs detection code)', _official('official_fan_l_hybrid')),
}
DEFAULT_BACKBONES = ('fan_t_hybrid', 'fan_s_hybrid', 'fan_b_hybrid', 'fan_s_vit', 'fan_swin_t', 'lvvit_s',
                     'swin_t', 'swin_s', 'convnext_t', 'convnext_s')


def add_input_arguments(parser, warmup: int, repeats: int) -> None:
    """The options the backbone-level benchmarks share: ``--batch``, ``--size`` (square side), ``--precision``,
    ``--device``, ``--warmup`` and ``--repeats`` (with these defaults)."""
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--size', type=int, default=896, help='square input side')
    parser.add_argument('--precision', default='bf16', choices=list(PRECISIONS),
                        help='autocast dtype (fp32: none)')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--warmup', type=int, default=warmup)
    parser.add_argument('--repeats', type=int, default=repeats)


def parse_spec(spec: str) -> Tuple[str, Tuple[str, ...]]:
    """'fan_s_hybrid+cl+compile' -> ('fan_s_hybrid', ('cl', 'compile')), with clear errors."""
    name, *flags = spec.split('+')
    if name not in BACKBONES:
        raise ValueError(f'unknown backbone {name!r} in {spec!r}; known: {sorted(BACKBONES)}')
    bad = [f for f in flags if f not in FLAGS]
    if bad:
        raise ValueError(f'unknown flag(s) {bad} in {spec!r}; known: {list(FLAGS)}')
    if 'compile_full' in flags and 'compile' in flags:
        raise ValueError(f'{spec!r}: +compile_full compiles the whole backbone, +compile its blocks; pick one '
                         '(+compile_full+cudagraph: the whole backbone with CUDA graphs)')
    if 'cp' in flags and 'cudagraph' in flags:
        raise ValueError(f'{spec!r}: CUDA-graph trees fail under activation checkpointing '
                         '(pytorch/pytorch#154306); use +cp+compile')
    return name, tuple(flags)


def build_backbone(spec: str, img_size: int, device: torch.device) -> nn.Module:
    """The backbone of ``spec`` on ``device``, its flags applied (random weights)."""
    name, flags = parse_spec(spec)
    builder = BACKBONES[name][1]
    # static shapes: every benchmark input has one size (blocks of different stages get their own graphs)
    mode = 'reduce-overhead' if 'cudagraph' in flags else 'default'
    compile_options = (dict(dynamic=False, mode=mode)
                       if {'compile', 'cudagraph', 'compile_full'} & set(flags) else None)
    whole = 'compile_full' in flags
    if getattr(builder, 'dense', False):
        # fan_mm's backbones compile themselves (compile_blocks; +compile_full: scope='backbone'), with what
        # only the backbone does: one CUDA-graph generation per inference forward, its maps cloned once
        if compile_options is not None:
            if whole:
                compile_options['scope'] = 'backbone'
            if device.type != 'cuda':
                compile_options['on_cpu'] = True  # the backbones compile for CUDA inputs only, unless told
        model = builder(compile_blocks=compile_options or False)
        compile_options = None
    else:
        model = builder(img_size) if getattr(builder, 'needs_size', False) else builder()
    if 'cp' in flags:
        if hasattr(model, 'trunk'):
            model.trunk.set_grad_checkpointing(True)
        elif hasattr(model, 'use_checkpoint'):  # the official backbones: as their configs run them
            model.use_checkpoint = True
        elif hasattr(model, 'set_grad_checkpointing'):
            model.set_grad_checkpointing(True)
        else:
            raise ValueError(f'{spec}: {type(model).__name__} has no activation checkpointing')
    for flag, sizes, which in (('triton7', (7,), '7x7 '), ('triton', (1, 3, 5, 7), '')):
        if flag not in flags:
            continue
        from fan_mm.layers.depthwise_triton import route_depthwise_to_triton
        if not route_depthwise_to_triton(model, kernel_sizes=sizes):
            raise ValueError(f'{spec}: {type(model).__name__} has no {which}depthwise convolutions for +{flag}')
        if device.type != 'cuda':  # the routed convs would run F.conv2d there: a row named for what it did not time
            raise ValueError(f'{spec}: +{flag} runs the Triton kernels on CUDA devices only, not on {device.type}')
    model = model.to(device)
    if 'cl' in flags:
        model = model.to(memory_format=torch.channels_last)
    if compile_options is not None and whole:
        # one graph of the whole backbone (timm's and torchvision's trace without graph breaks), in place
        # (nn.Module.compile): parameter names unchanged
        model.compile(mode=mode, dynamic=False)
    elif compile_options is not None:
        from fan_mm.layers import compile_trunk_blocks
        n = compile_trunk_blocks(model, **compile_options)
        if not n:
            raise ValueError(f'{spec}: no blocks to compile in {type(model).__name__}')
    return model


def _loss(outs) -> torch.Tensor:
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return sum(o.float().mean() for o in outs)


def bench_backbone(spec: str, batch: int, size: int, precision: str, device: torch.device,
                   warmup: int, repeats: int, modes: Sequence[str] = ('train', 'infer')) -> Dict:
    """One row: train step (forward + backward of the mean of every output) and inference of ``spec``."""
    check_precision(precision)
    name, flags = parse_spec(spec)
    torch.manual_seed(0)
    model = build_backbone(spec, size, device)
    x = torch.randn(batch, 3, size, size, device=device)
    if 'cl' in flags:
        x = x.contiguous(memory_format=torch.channels_last)
    row = dict(spec=spec, model=BACKBONES[name][0], params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    if 'train' in modes:
        model.train()

        def train_step():  # no cudagraph_mark_step_begin: mmengine's loops do not call it either
            model.zero_grad(set_to_none=True)
            with autocast(device, precision):
                loss = _loss(model(x))
            loss.backward()
        with CompileStats() as compiled:
            r = time_fn(train_step, device, warmup, repeats)
        row.update(train_ms=r['ms'], train_ms_min=r['ms_min'], train_peak_gib=r['peak_gib'],
                   train_reserved_gib=r['reserved_gib'], train_warmup_s=r['warmup_s'],
                   train_compile=compiled.result)
        model.zero_grad(set_to_none=True)
    if 'infer' in modes:
        model.eval()

        def infer():
            with torch.inference_mode(), autocast(device, precision):
                return model(x)
        with CompileStats() as compiled:
            r = time_fn(infer, device, warmup, repeats)
        row.update(infer_ms=r['ms'], infer_ms_min=r['ms_min'], infer_peak_gib=r['peak_gib'],
                   infer_warmup_s=r['warmup_s'], infer_compile=compiled.result)
    del model
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return row


def profile_train_step(spec: str, batch: int, size: int, precision: str, device: torch.device,
                       top: int = 25) -> Dict:
    """``fan_mm.benchmarks.profiling.profile_steps`` over 3 train steps of ``spec`` (after 3 warm-ups)."""
    model = build_backbone(spec, size, device).train()
    x = torch.randn(batch, 3, size, size, device=device)

    def step():
        model.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = _loss(model(x))
        loss.backward()
    return profile_steps(step, device, spec, top=top)


def _conv_backward_flop(grad_out_shape, x_shape, w_shape, bias, stride, padding, dilation, transposed,
                        output_padding, groups, output_mask, out_shape=None, **kwargs) -> int:
    # Each of the input and weight gradients takes the multiply-adds of the forward convolution:
    # batch x (positions of the strided side) x weight elements, the weight holding C_in / groups (or
    # C_out / groups, transposed) per filter. torch's own formula (2.11 - 2.15) leaves the groups out of the
    # weight gradient, which counts a depthwise conv's C times over.
    positions = math.prod((x_shape if transposed else grad_out_shape)[2:])
    forward = 2 * grad_out_shape[0] * positions * math.prod(w_shape)
    return forward * (bool(output_mask[0]) + bool(output_mask[1]))


def flop_counter():
    """``torch.utils.flop_counter.FlopCounterMode`` (no printout) with grouped convolutions' backward
    counted right (see ``_conv_backward_flop``)."""
    from torch.utils.flop_counter import FlopCounterMode
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop})


def autocast_census(spec: str, batch: int, size: int, precision: str, device: torch.device,
                    top: int = 15) -> Dict:
    """Where the dtype casts of one forward come from, what the backward keeps, and how many operations
    and FLOPs a train step has.

    Counts every ``aten._to_copy`` of one training-mode forward under autocast (``precision``), split
    into casts of parameters (autocast casts float32 weights and biases on every call) and of
    activations, and grouped by the innermost module that ran it (block indices folded to ``N``);
    and sums the bytes of the distinct storages autograd saves for the backward, parameters excluded.
    Then runs the backward of the benchmark's loss and counts the operations of forward and backward
    (aten operators that compute, views and ``detach`` left out: in eager mode each launches one or a
    few kernels on a GPU, so the counts show what a launch-bound step costs) and the FLOPs of the step
    (``flop_counter``: matrix products, attention and convolutions; elementwise work not counted).
    Device-independent counts (the autocast rules of ``device`` apply), so it also runs on CPU.
    """
    import re
    from torch.utils._python_dispatch import TorchDispatchMode

    model = build_backbone(spec, size, device).train()
    x = torch.randn(batch, 3, size, size, device=device)
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    stack: List[str] = []

    def leave(module, args, output):  # returns None: the output stays as it is
        stack.pop()

    hooks = []
    for name, module in model.named_modules():
        hooks.append(module.register_forward_pre_hook(lambda m, a, name=name: stack.append(name)))
        hooks.append(module.register_forward_hook(leave))

    casts: Dict[Tuple[str, str], int] = {}
    ops = {'forward': 0, 'backward': 0}
    phase = ['forward']
    uncounted = {torch.ops.aten.detach.default, torch.ops.aten.lift_fresh.default}

    class CastCounter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if not func.is_view and func not in uncounted:
                ops[phase[0]] += 1
            if phase[0] == 'forward' and func is torch.ops.aten._to_copy.default and isinstance(args[0], torch.Tensor):
                kind = 'param' if args[0].untyped_storage().data_ptr() in param_ptrs else 'activation'
                where = re.sub(r'\.\d+(?=\.|$)', '.N', stack[-1]) if stack and stack[-1] else '(top)'
                casts[(where, kind)] = casts.get((where, kind), 0) + 1
            return func(*args, **(kwargs or {}))

    saved: Dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_ptrs:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    flops = flop_counter()
    try:
        with flops, CastCounter():
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, precision):
                loss = _loss(model(x))
            phase[0] = 'backward'
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    by_kind = {k: sum(n for (_, kk), n in casts.items() if kk == k) for k in ('param', 'activation')}
    rows = sorted(casts.items(), key=lambda kv: -kv[1])[:top]
    return dict(spec=spec, batch=batch, size=size, precision=precision, casts=sum(casts.values()),
                param_casts=by_kind['param'], activation_casts=by_kind['activation'],
                saved_mib=sum(saved.values()) / 2 ** 20, forward_ops=ops['forward'], backward_ops=ops['backward'],
                train_gflop=flops.get_total_flops() / 1e9,
                gflop_by_op={str(op): n / 1e9 for op, n in  # e.g. 'aten.mm', 'aten.convolution_backward'
                             sorted(flops.get_flop_counts().get('Global', {}).items(), key=lambda kv: -kv[1])},
                by_module=[dict(module=w, kind=k, casts=n) for (w, k), n in rows])


def run_backbone_benchmark(specs: Sequence[str], batch: int, size: int, precision: str, device: str,
                           warmup: int, repeats: int, reference: Optional[str] = 'swin_t',
                           profile: Sequence[str] = (), census: Sequence[str] = (),
                           official_checkout: Optional[str] = None, official_timm: Optional[str] = None) -> Dict:
    """All ``specs`` in one process; ratios against ``reference`` (must be one of the specs) if given;
    a profile (``profile_train_step``) and a cast / saved-tensor census (``autocast_census``) of the
    specs named in ``profile`` / ``census``.

    The ``official_*`` specs (the NVlabs code, from ``official_checkout``; see
    :mod:`fan_mm.benchmarks.official`) run in a second process, with ``official_timm`` (a folder holding the
    timm they were written for) first on its path, and time the reference too, which must then be a
    torchvision model (``tv_swin_t``, ``tv_resnet50``). Each row's ``*_ratio`` is against the reference of
    its own process; with an official spec in the run, the other rows also get ``train_vs_official`` /
    ``infer_vs_official`` (time ratios through the two references: ``(row / ref) / (official / ref')``)
    and ``mem_vs_official`` (peak memory, as measured), against the first official spec."""
    for s in list(specs) + list(profile) + list(census):
        parse_spec(s)
    official = [s for s in specs if s.startswith('official_')]
    if official:
        return _with_official_process(specs, official, batch, size, precision, device, warmup, repeats,
                                      reference, profile, census, official_checkout, official_timm)
    return run_in_this_process(specs, batch, size, precision, device, warmup, repeats, reference, profile, census)


def run_in_this_process(specs: Sequence[str], batch: int, size: int, precision: str, device: str, warmup: int,
                        repeats: int, reference: Optional[str] = 'swin_t', profile: Sequence[str] = (),
                        census: Sequence[str] = ()) -> Dict:
    """``run_backbone_benchmark`` for specs that all run in this process."""
    check_precision(precision)
    dev = prepare_device(device, cudnn_benchmark=True)
    rows = []
    for s in specs:
        try:
            rows.append(bench_backbone(s, batch, size, precision, dev, warmup, repeats))
        except torch.cuda.OutOfMemoryError as e:  # keep the other rows
            rows.append(dict(spec=s, model=BACKBONES[parse_spec(s)[0]][0], error=f'OOM: {e}'.split('\n')[0]))
            torch.cuda.empty_cache()
    ref = next((r for r in rows if r['spec'] == reference and 'error' not in r), None) if reference else None
    if ref is not None:
        for r in rows:
            for k, ratio in (('train_ms', 'train_ratio'), ('infer_ms', 'infer_ratio'),
                             ('train_peak_gib', 'mem_ratio')):
                if k in r and ref.get(k):
                    r[ratio] = r[k] / ref[k]
    out = dict(kind='backbone', env=collect_environment(device=str(dev)), batch=batch, size=size,
               precision=precision, warmup=warmup, repeats=repeats, reference=reference if ref else None,
               rows=rows)
    if profile:
        out['profiles'] = [profile_train_step(s, batch, size, precision, dev) for s in profile]
    if census:
        out['census'] = [autocast_census(s, batch, size, precision, dev) for s in census]
    return out




def _with_official_process(specs, official, batch, size, precision, device, warmup, repeats, reference, profile,
                           census, checkout, timm_dir) -> Dict:
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from .official import CHECKOUT_ENV, check_checkout
    if not checkout:
        raise ValueError(f'{official}: the official backbones need --official-checkout (a clone of NVlabs/FAN)')
    check_checkout(checkout)
    in_parent = [s for s in list(profile) + list(census) if s.startswith('official_')]
    if in_parent:
        raise ValueError(f'--profile / --census {in_parent}: only fan_mm and reference specs (the official code '
                         'runs in a process of its own)')
    if not reference or not reference.startswith('tv_'):
        raise ValueError(f'--reference {reference!r}: with official specs the reference is timed in both processes '
                         'and must not depend on timm: use tv_swin_t or tv_resnet50')
    if timm_dir and not osp.isdir(osp.join(timm_dir, 'timm')):
        raise FileNotFoundError(f'--official-timm {timm_dir}: no timm package in it '
                                '(pip install --target DIR --no-deps timm==0.5.4)')
    timm_dir = osp.abspath(timm_dir) if timm_dir else None  # the child runs elsewhere (cwd=tmp, below)
    own = [s for s in specs if s not in official]
    if reference not in own:
        own.append(reference)
    env = dict(os.environ, **{CHECKOUT_ENV: osp.abspath(checkout)})
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (timm_dir, repo, env.get('PYTHONPATH')) if p)
    with tempfile.TemporaryDirectory() as tmp:
        out = osp.join(tmp, 'official.json')
        code = ('import json, sys; from fan_mm.benchmarks.backbone import run_in_this_process as r; '
                f'json.dump(r({list(official) + [reference]!r}, {batch}, {size}, {precision!r}, {device!r}, '
                f'{warmup}, {repeats}, reference={reference!r}), open(sys.argv[1], "w"))')
        # cwd=tmp: `python -c` puts the working directory first on the path, ahead of --official-timm
        done = subprocess.run([sys.executable, '-c', code, out], env=env, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f'the official backbones\' process (checkout {checkout}, timm from '
                               f'{timm_dir or "this environment"}) failed with exit code {done.returncode}:\n'
                               f'{done.stderr[-3000:]}')
        theirs = json.load(open(out))
    ours = run_in_this_process(own, batch, size, precision, device, warmup, repeats, reference=reference,
                               profile=profile, census=census)
    ours['official_env'] = theirs['env']
    for r in theirs['rows']:
        r['process'] = 'official'
    for r in ours['rows']:
        r['process'] = 'fan_mm'
    anchor = next((r for r in theirs['rows'] if r['spec'] == official[0] and 'error' not in r), None)
    if anchor is not None:
        for r in ours['rows'] + theirs['rows']:
            if 'error' in r:
                continue
            for k, ratio, norm in (('train_ms', 'train_vs_official', 'train_ratio'),
                                   ('infer_ms', 'infer_vs_official', 'infer_ratio'),
                                   ('train_peak_gib', 'mem_vs_official', None)):
                if norm is None:
                    if r.get(k) and anchor.get(k):
                        r[ratio] = r[k] / anchor[k]
                elif r.get(norm) and anchor.get(norm):
                    r[ratio] = r[norm] / anchor[norm]
    ours['rows'] = theirs['rows'] + ours['rows']
    ours['official_anchor'] = official[0] if anchor is not None else None
    ours['official_commit'] = _git_commit(checkout)
    return ours


def _git_commit(checkout: str) -> Optional[str]:
    """The checkout's commit, if it is the top of a git work tree (not a folder inside another repository)."""
    import subprocess
    top = subprocess.run(['git', '-C', checkout, 'rev-parse', '--show-toplevel'], capture_output=True, text=True)
    if top.returncode != 0 or osp.realpath(top.stdout.strip()) != osp.realpath(checkout):
        return None
    done = subprocess.run(['git', '-C', checkout, 'rev-parse', 'HEAD'], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None
