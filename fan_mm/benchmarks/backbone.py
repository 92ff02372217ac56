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
timm models), ``+compile_full`` (one ``torch.compile`` of the whole backbone), ``+cudagraph`` (block
compilation with ``mode='reduce-overhead'``: CUDA graphs), e.g. ``fan_s_hybrid+cl+compile``.
"""
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from fan_mm.utils.environment import collect_environment
from .precision import autocast, check_precision, prepare_device
from .timing import synchronize, time_fn

FLAGS = ('cl', 'cp', 'compile', 'compile_full', 'cudagraph')


# ---- backbones ----------------------------------------------------------------------------------
def _fan_dense(cls_name: str, **kwargs) -> Callable[[], nn.Module]:
    def build():
        from fan_mm.models import backbones
        return getattr(backbones, cls_name)(**kwargs)
    return build


def _timm_features(name: str, **kwargs) -> Callable[[int], nn.Module]:
    def build(img_size: int):
        import timm
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


# name -> (label, builder). fan_mm entries are the mmdet/mmseg backbones (detection layout for the
# hybrids); timm entries read every stage through forward_intermediates.
BACKBONES: Dict[str, Tuple[str, Callable]] = {
    'fan_t_hybrid': ('FAN-T-Hybrid (fan_mm FANHybrid)', _fan_dense('FANHybrid', arch='tiny')),
    'fan_s_hybrid': ('FAN-S-Hybrid (fan_mm FANHybrid)', _fan_dense('FANHybrid', arch='small')),
    'fan_b_hybrid': ('FAN-B-Hybrid (fan_mm FANHybrid)', _fan_dense('FANHybrid', arch='base')),
    'fan_s_vit': ('FAN-S-ViT (fan_mm FANViT, pyramid)', _fan_dense('FANViT', arch='small')),
    'fan_swin_t': ('FAN-Swin-T (fan_mm timm model)', _timm_features('fan_swin_tiny_patch4_window7_224')),
    'lvvit_s': ('LV-ViT-S (fan_mm timm model)', _timm_features('lvvit_s')),
    'swin_t': ('Swin-T (timm)', _timm_features('swin_tiny_patch4_window7_224')),
    'swin_s': ('Swin-S (timm)', _timm_features('swin_small_patch4_window7_224')),
    'convnext_t': ('ConvNeXt-T (timm)', _timm_features('convnext_tiny')),
    'convnext_s': ('ConvNeXt-S (timm)', _timm_features('convnext_small')),
}
DEFAULT_BACKBONES = ('fan_t_hybrid', 'fan_s_hybrid', 'fan_b_hybrid', 'fan_s_vit', 'fan_swin_t', 'lvvit_s',
                     'swin_t', 'swin_s', 'convnext_t', 'convnext_s')


def parse_spec(spec: str) -> Tuple[str, Tuple[str, ...]]:
    """'fan_s_hybrid+cl+compile' -> ('fan_s_hybrid', ('cl', 'compile')), with clear errors."""
    name, *flags = spec.split('+')
    if name not in BACKBONES:
        raise ValueError(f'unknown backbone {name!r} in {spec!r}; known: {sorted(BACKBONES)}')
    bad = [f for f in flags if f not in FLAGS]
    if bad:
        raise ValueError(f'unknown flag(s) {bad} in {spec!r}; known: {list(FLAGS)}')
    return name, tuple(flags)


def build_backbone(spec: str, img_size: int, device: torch.device) -> nn.Module:
    """The backbone of ``spec`` on ``device``, its flags applied (random weights)."""
    name, flags = parse_spec(spec)
    builder = BACKBONES[name][1]
    model = builder(img_size) if getattr(builder, 'needs_size', False) else builder()
    if 'cp' in flags:
        if hasattr(model, 'trunk'):
            model.trunk.set_grad_checkpointing(True)
        else:
            model.set_grad_checkpointing(True)
    model = model.to(device)
    if 'cl' in flags:
        model = model.to(memory_format=torch.channels_last)
    if 'compile' in flags or 'cudagraph' in flags:
        from fan_mm.layers import compile_trunk_blocks
        # static shapes: every benchmark input has one size (blocks of different stages get their own graphs)
        opts = dict(dynamic=False, mode='reduce-overhead' if 'cudagraph' in flags else 'default')
        n = compile_trunk_blocks(model, **opts)
        if not n:
            raise ValueError(f'{spec}: no blocks to compile in {type(model).__name__}')
    if 'compile_full' in flags:
        model.compile()  # in place (nn.Module.compile): parameter names unchanged
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

        def train_step():
            if 'cudagraph' in flags:  # a new step: earlier graph outputs may be overwritten
                torch.compiler.cudagraph_mark_step_begin()
            model.zero_grad(set_to_none=True)
            with autocast(device, precision):
                loss = _loss(model(x))
            loss.backward()
        r = time_fn(train_step, device, warmup, repeats)
        row.update(train_ms=r['ms'], train_ms_min=r['ms_min'], train_peak_gib=r['peak_gib'],
                   train_reserved_gib=r['reserved_gib'], train_warmup_s=r['warmup_s'])
        model.zero_grad(set_to_none=True)
    if 'infer' in modes:
        model.eval()

        def infer():
            if 'cudagraph' in flags:
                torch.compiler.cudagraph_mark_step_begin()
            with torch.inference_mode(), autocast(device, precision):
                return model(x)
        r = time_fn(infer, device, warmup, repeats)
        row.update(infer_ms=r['ms'], infer_ms_min=r['ms_min'], infer_peak_gib=r['peak_gib'],
                   infer_warmup_s=r['warmup_s'])
    del model
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return row


def profile_train_step(spec: str, batch: int, size: int, precision: str, device: torch.device,
                       top: int = 25) -> Dict:
    """torch.profiler over 3 train steps (after 3 warm-ups): the ``top`` ops by self device time."""
    from torch.profiler import ProfilerActivity, profile
    model = build_backbone(spec, size, device).train()
    x = torch.randn(batch, 3, size, size, device=device)

    def step():
        model.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = _loss(model(x))
        loss.backward()
    for _ in range(3):
        step()
    synchronize(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=acts) as prof:
        for _ in range(3):
            step()
        synchronize(device)
    key = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    # operators only: their self device time is that of the kernels they launch (kernels are listed too)
    events = [e for e in prof.key_averages() if str(getattr(e, 'device_type', '')).endswith('CPU')]
    total = sum(getattr(e, key) for e in events) or 1.
    rows = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:top]
    ops = [dict(op=e.key, ms_per_step=getattr(e, key) / 1e3 / 3, share=getattr(e, key) / total,
                calls_per_step=e.count / 3) for e in rows]
    out = dict(spec=spec, ms_per_step_total=total / 1e3 / 3, ops=ops)
    if device.type == 'cuda':
        # Every GPU kernel (inductor's "## Call CompiledFxGraph" ranges are annotations, not kernels):
        # how many a step launches is what bounds a step on the CPU side, their sum is the GPU's busy time.
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
                   and not e.name.startswith('## ')]
        out.update(kernels_per_step=len(kernels) / 3,
                   kernel_ms_per_step=sum(e.time_range.elapsed_us() for e in kernels) / 1e3 / 3)
    return out


def autocast_census(spec: str, batch: int, size: int, precision: str, device: torch.device,
                    top: int = 15) -> Dict:
    """Where the dtype casts of one forward come from, and what the backward keeps.

    Counts every ``aten._to_copy`` of one training-mode forward under autocast (``precision``), split
    into casts of parameters (autocast casts float32 weights and biases on every call) and of
    activations, and grouped by the innermost module that ran it (block indices folded to ``N``);
    and sums the bytes of the distinct storages autograd saves for the backward, parameters excluded.
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

    class CastCounter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._to_copy.default and isinstance(args[0], torch.Tensor):
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

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), CastCounter(), \
                autocast(device, precision):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    by_kind = {k: sum(n for (_, kk), n in casts.items() if kk == k) for k in ('param', 'activation')}
    rows = sorted(casts.items(), key=lambda kv: -kv[1])[:top]
    return dict(spec=spec, batch=batch, size=size, precision=precision, casts=sum(casts.values()),
                param_casts=by_kind['param'], activation_casts=by_kind['activation'],
                saved_mib=sum(saved.values()) / 2 ** 20,
                by_module=[dict(module=w, kind=k, casts=n) for (w, k), n in rows])


def run_backbone_benchmark(specs: Sequence[str], batch: int, size: int, precision: str, device: str,
                           warmup: int, repeats: int, reference: Optional[str] = 'swin_t',
                           profile: Sequence[str] = (), census: Sequence[str] = ()) -> Dict:
    """All ``specs`` in one process; ratios against ``reference`` (must be one of the specs) if given;
    a profile (``profile_train_step``) and a cast / saved-tensor census (``autocast_census``) of the
    specs named in ``profile`` / ``census``."""
    for s in list(specs) + list(profile) + list(census):
        parse_spec(s)
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


