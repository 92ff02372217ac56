"""Speed and memory benchmarks: dense backbones and whole mmdet / mmseg models, side by side in one run.

Timing: a step is run ``warmup`` times, then ``repeats`` times, each timed alone (CUDA events on GPU,
``time.perf_counter`` on CPU); the median is reported. Peak memory is ``torch.cuda.max_memory_allocated``
over the timed steps (weights, gradients and optimizer state included; 0 on CPU); backbone rows also give
``torch.cuda.max_memory_reserved`` (what the process holds on the GPU, the caching allocator's slack
included), the figure that counts the private memory pools of CUDA graphs, which the former misses.

Backbone specs are a name from ``BACKBONES`` optionally followed by ``+flag`` modifiers:
``+cl`` (channels_last input and weights), ``+cp`` (activation checkpointing), ``+compile``
(``torch.compile`` of every trunk block, as the backbones' ``compile_blocks=True`` does; the same for
timm models), ``+compile_full`` (one ``torch.compile`` of the whole backbone), ``+cudagraph`` (block
compilation with ``mode='reduce-overhead'``: CUDA graphs), e.g. ``fan_s_hybrid+cl+compile``.
"""
import json
import math
import platform
import statistics
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
FLAGS = ('cl', 'cp', 'compile', 'compile_full', 'cudagraph')
# benchmark_model's --compile-backbone: torch.compile options for every block of a model's backbone
COMPILE_BACKBONE = {None: None, 'default': dict(dynamic=False),
                    'cudagraph': dict(dynamic=False, mode='reduce-overhead')}


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
        from fan_mm.models.backbones.base import compile_trunk_blocks
        # static shapes: every benchmark input has one size (blocks of different stages get their own graphs)
        opts = dict(dynamic=False, mode='reduce-overhead' if 'cudagraph' in flags else 'default')
        n = compile_trunk_blocks(model, **opts)
        if not n:
            raise ValueError(f'{spec}: no blocks to compile in {type(model).__name__}')
    if 'compile_full' in flags:
        model.compile()  # in place (nn.Module.compile): parameter names unchanged
    return model


# ---- timing -------------------------------------------------------------------------------------
def _sync(device: torch.device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> Dict:
    """Median / min / max milliseconds of ``fn`` and the CUDA peak memory (GiB) over the timed calls, and
    the seconds the warm-up took (``warmup_s``: where ``torch.compile`` / CUDA-graph capture happens)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    warmup_s = time.perf_counter() - t0
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        if device.type == 'cuda':
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else 0.
    reserved = torch.cuda.max_memory_reserved(device) / 2 ** 30 if device.type == 'cuda' else 0.
    return dict(ms=statistics.median(times), ms_min=min(times), ms_max=max(times), peak_gib=peak,
                reserved_gib=reserved,
                warmup_s=warmup_s)


def _autocast(device: torch.device, precision: str):
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _loss(outs) -> torch.Tensor:
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return sum(o.float().mean() for o in outs)


def bench_backbone(spec: str, batch: int, size: int, precision: str, device: torch.device,
                   warmup: int, repeats: int, modes: Sequence[str] = ('train', 'infer')) -> Dict:
    """One row: train step (forward + backward of the mean of every output) and inference of ``spec``."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision={precision!r}: use one of {list(PRECISIONS)}')
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
            with _autocast(device, precision):
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
            with torch.inference_mode(), _autocast(device, precision):
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
        with _autocast(device, precision):
            loss = _loss(model(x))
        loss.backward()
    for _ in range(3):
        step()
    _sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=acts) as prof:
        for _ in range(3):
            step()
        _sync(device)
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
                _autocast(device, precision):
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


def environment(device: torch.device) -> Dict:
    env = dict(torch=torch.__version__, python=platform.python_version(), device=str(device),
               date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    if device.type == 'cuda':
        env['gpu'] = torch.cuda.get_device_name(device)
        env['cuda'] = torch.version.cuda
    else:
        env['cpu'] = platform.processor() or platform.machine()
    try:
        import timm
        env['timm'] = timm.__version__
    except ImportError:
        pass
    return env


def run_backbone_benchmark(specs: Sequence[str], batch: int, size: int, precision: str, device: str,
                           warmup: int, repeats: int, reference: Optional[str] = 'swin_t',
                           profile: Sequence[str] = (), census: Sequence[str] = ()) -> Dict:
    """All ``specs`` in one process; ratios against ``reference`` (must be one of the specs) if given;
    a profile (``profile_train_step``) and a cast / saved-tensor census (``autocast_census``) of the
    specs named in ``profile`` / ``census``."""
    for s in list(specs) + list(profile) + list(census):
        parse_spec(s)
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device={device!r} but CUDA is not available')
    torch.backends.cuda.matmul.allow_tf32 = True  # as timm / mmengine training does
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
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
    out = dict(kind='backbone', env=environment(dev), batch=batch, size=size, precision=precision,
               warmup=warmup, repeats=repeats, reference=reference if ref else None, rows=rows)
    if profile:
        out['profiles'] = [profile_train_step(s, batch, size, precision, dev) for s in profile]
    if census:
        out['census'] = [autocast_census(s, batch, size, precision, dev) for s in census]
    return out


# ---- tables -------------------------------------------------------------------------------------
def _fmt(v, nd=1):
    if v is None:
        return '-'
    if isinstance(v, float):
        return f'{v:.{nd}f}' if math.isfinite(v) else '-'
    return str(v)


def markdown_table(result: Dict) -> str:
    """The result rows as a Markdown table (with the run's settings in a line above it)."""
    e = result['env']
    head = (f"{result['kind']} benchmark on {e.get('gpu', e.get('cpu', e['device']))}, torch {e['torch']}, "
            f"{result['precision']}, batch {result['batch']}, ")
    if result['kind'] == 'backbone':
        head += f"{result['size']}x{result['size']}"
        cols = [('spec', 'spec', 0), ('params (M)', 'params_m', 1), ('train (ms)', 'train_ms', 1),
                ('train / ref', 'train_ratio', 2), ('infer (ms)', 'infer_ms', 1), ('infer / ref', 'infer_ratio', 2),
                ('train peak (GiB)', 'train_peak_gib', 2), ('mem / ref', 'mem_ratio', 2),
                ('train reserved (GiB)', 'train_reserved_gib', 2), ('infer peak (GiB)', 'infer_peak_gib', 2)]
    else:
        head += f"{result['height']}x{result['width']}, {result.get('boxes', '-')} boxes/image"
        if result.get('compile_backbone'):
            head += f", every backbone compiled by blocks ({result['compile_backbone']})"
        cols = [('config', 'name', 0), ('params (M)', 'params_m', 1), ('train (s/iter)', 'train_s_iter', 3),
                ('train / ref', 'train_ratio', 2), ('infer (img/s)', 'infer_img_s', 1),
                ('infer (ms/batch)', 'infer_ms', 1), ('infer time / ref', 'infer_ratio', 2),
                ('train peak (GiB)', 'train_peak_gib', 2), ('train reserved (GiB)', 'train_reserved_gib', 2),
                ('infer peak (GiB)', 'infer_peak_gib', 2)]
    if result.get('reference'):
        head += f"; ref = {result['reference']}"
    lines = [head, '', '| ' + ' | '.join(c[0] for c in cols) + ' |', '|' + '---|' * len(cols)]
    for r in result['rows']:
        if 'error' in r:
            lines.append(f"| {r.get('spec', r.get('name'))} | {r['error']} |")
            continue
        lines.append('| ' + ' | '.join(_fmt(r.get(k), nd) for _, k, nd in cols) + ' |')
    for p in result.get('profiles', []):
        kernels = (f"; {p['kernels_per_step']:.0f} GPU kernels per step, {p['kernel_ms_per_step']:.1f} ms of "
                   'kernel time' if 'kernels_per_step' in p else '')
        lines += ['', f"Top ops of one train step of {p['spec']} (self device time, {p['ms_per_step_total']:.1f} "
                  f'ms per step in all{kernels}):', '',
                  '| op | ms / step | share | calls / step |', '|---|---|---|---|']
        lines += [f"| `{o['op'][:70]}` | {o['ms_per_step']:.2f} | {100 * o['share']:.1f}% | "
                  f"{o['calls_per_step']:.0f} |" for o in p['ops']]
    for c in result.get('census', []):
        lines += ['', f"Casts in one forward of {c['spec']}: {c['casts']} ({c['param_casts']} of parameters, "
                  f"{c['activation_casts']} of activations); tensors saved for the backward: "
                  f"{c['saved_mib']:.1f} MiB (parameters excluded). Most casts:", '',
                  '| module | kind | casts |', '|---|---|---|']
        lines += [f"| `{m['module']}` | {m['kind']} | {m['casts']} |" for m in c['by_module']]
    return '\n'.join(lines)


def write_result(result: Dict, json_path: Optional[str]) -> str:
    table = markdown_table(result)
    if json_path:
        from .files import atomic_write
        atomic_write(json_path, (json.dumps(result, indent=1) + '\n').encode())
    return table


# ---- whole models -------------------------------------------------------------------------------
def _strip_pretrained(cfg) -> None:
    """Random weights: drop every ``init_cfg`` of type Pretrained (nothing is read or downloaded)."""
    def visit(node):
        if isinstance(node, dict):
            ic = node.get('init_cfg')
            if isinstance(ic, dict) and ic.get('type') == 'Pretrained':
                node['init_cfg'] = None
            elif isinstance(ic, list):
                node['init_cfg'] = [c for c in ic if c.get('type') != 'Pretrained'] or None
            if node.get('pretrained') is not None and 'type' in node:
                node['pretrained'] = None
            for v in node.values():
                visit(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v)
    visit(cfg.model)


def build_model_from_config(config: str, cfg_options: Optional[dict] = None):
    """The mmdet / mmseg model of ``config`` (a path or ``mmdet::...`` / ``mmseg::...``), random weights."""
    import importlib
    import os.path as osp
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    pkg, sep, rel = config.partition('::')
    if sep:  # 'mmdet::swin/x.py': a config shipped inside the package (mim layout)
        root = osp.dirname(importlib.import_module(pkg).__file__)
        config = osp.join(root, '.mim', 'configs', rel)
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    elif scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        raise ValueError(f'{config}: default_scope={scope!r}, expected mmdet or mmseg')
    import fan_mm.models  # noqa: F401  (registers the backbones)
    _strip_pretrained(cfg)
    model = MODELS.build(cfg.model)
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model, scope


def synthetic_batch(scope: str, batch: int, height: int, width: int, boxes: int, num_classes: int,
                    device: torch.device, seed: int = 0):
    """Normalised images and data samples with ``boxes`` random boxes + masks (detection) or a random label
    map (segmentation), as the data preprocessor would hand them to the model."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, height, width, generator=g).to(device)
    samples = []
    meta = dict(img_shape=(height, width), ori_shape=(height, width), pad_shape=(height, width),
                batch_input_shape=(height, width), scale_factor=(1., 1.), flip=False, flip_direction=None)
    for _ in range(batch):
        if scope == 'mmdet':
            from mmdet.structures import DetDataSample
            from mmdet.structures.mask import BitmapMasks
            from mmengine.structures import InstanceData
            xy = torch.rand(boxes, 2, generator=g) * torch.tensor([width * 0.7, height * 0.7])
            wh = (0.1 + 0.2 * torch.rand(boxes, 2, generator=g)) * torch.tensor([width, height])
            bboxes = torch.cat([xy, xy + wh], 1)
            masks = torch.zeros(boxes, height, width, dtype=torch.uint8)
            for i, (x0, y0, x1, y1) in enumerate(bboxes.round().int().tolist()):
                masks[i, y0:y1, x0:x1] = 1
            s = DetDataSample(metainfo=meta)
            s.gt_instances = InstanceData(bboxes=bboxes.to(device),
                                          labels=torch.randint(0, num_classes, (boxes,), generator=g).to(device),
                                          masks=BitmapMasks(masks.numpy(), height, width))
        else:
            from mmengine.structures import PixelData
            from mmseg.structures import SegDataSample
            s = SegDataSample(metainfo=meta)
            s.gt_sem_seg = PixelData(
                data=torch.randint(0, num_classes, (1, height, width), generator=g).to(device))
        samples.append(s)
    return inputs, samples


def _num_classes(model, scope: str) -> int:
    if scope == 'mmseg':
        return model.decode_head.num_classes
    head = getattr(model, 'roi_head', None)
    if head is not None:
        bh = head.bbox_head
        return (bh[-1] if isinstance(bh, nn.ModuleList) else bh).num_classes
    return model.bbox_head.num_classes


def bench_model(config: str, batch: int, height: int, width: int, boxes: int, precision: str,
                device: torch.device, warmup: int, repeats: int, name: Optional[str] = None,
                cfg_options: Optional[dict] = None, compile_backbone: Optional[str] = None) -> Dict:
    """One row: training iteration (loss forward + backward + AdamW step, AMP with a grad scaler for fp16,
    as mmengine's AmpOptimWrapper) and inference (``mode='predict'``) of the model of ``config``.

    ``compile_backbone``: None (as the config says), ``'default'`` (``torch.compile`` of every backbone
    block, static shapes) or ``'cudagraph'`` (the same with ``mode='reduce-overhead'``: CUDA graphs), for
    any backbone with blocks (mmdet's Swin included), so that peers can be compared like for like."""
    if compile_backbone not in COMPILE_BACKBONE:
        raise ValueError(f'compile_backbone={compile_backbone!r}: use one of {list(COMPILE_BACKBONE)}')
    torch.manual_seed(0)
    model, scope = build_model_from_config(config, cfg_options)
    model = model.to(device)
    if compile_backbone and getattr(model.backbone, 'compile_blocks', False):
        raise ValueError(f'{config} already compiles its backbone blocks (model.backbone.compile_blocks='
                         f'{model.backbone.compile_blocks}); compiling them again with compile_backbone='
                         f'{compile_backbone!r} would nest the two: use the config without compile_blocks')
    if compile_backbone:  # in place: parameter names stay as they are
        from fan_mm.models.backbones.base import compile_trunk_blocks
        opts = COMPILE_BACKBONE[compile_backbone]
        if not compile_trunk_blocks(model.backbone, **opts):  # blockwise where it has blocks
            model.backbone.compile(**opts)
    inputs, samples = synthetic_batch(scope, batch, height, width, boxes, _num_classes(model, scope), device)
    row = dict(name=name or config, config=config, scope=scope, compile_backbone=compile_backbone,
               params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == 'fp16')
    model.train()

    def train_iter():
        opt.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            losses = model(inputs, samples, mode='loss')
        loss, _ = model.parse_losses(losses)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    r = time_fn(train_iter, device, warmup, repeats)
    row.update(train_s_iter=r['ms'] / 1e3, train_ms=r['ms'], train_peak_gib=r['peak_gib'],
               train_reserved_gib=r['reserved_gib'], train_warmup_s=r['warmup_s'])
    opt.zero_grad(set_to_none=True)
    model.eval()

    def infer():
        with torch.no_grad(), _autocast(device, precision):
            return model(inputs, [s.clone() for s in samples], mode='predict')
    r = time_fn(infer, device, warmup, repeats)
    row.update(infer_ms=r['ms'], infer_img_s=batch / (r['ms'] / 1e3), infer_peak_gib=r['peak_gib'],
               infer_reserved_gib=r['reserved_gib'], infer_warmup_s=r['warmup_s'])
    del model, opt
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return row


def run_model_benchmark(configs: Sequence[Tuple[str, str]], batch: int, height: int, width: int, boxes: int,
                        precision: str, device: str, warmup: int, repeats: int,
                        reference: Optional[str] = None, cfg_options: Optional[dict] = None,
                        compile_backbone: Optional[str] = None) -> Dict:
    """``configs``: (name, config) pairs, all measured in this process; ratios against ``reference`` (a name)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision={precision!r}: use one of {list(PRECISIONS)}')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device={device!r} but CUDA is not available')
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rows = []
    for name, config in configs:
        try:
            rows.append(bench_model(config, batch, height, width, boxes, precision, dev, warmup, repeats,
                                    name=name, cfg_options=cfg_options, compile_backbone=compile_backbone))
        except torch.cuda.OutOfMemoryError as e:
            rows.append(dict(name=name, config=config, error=f'OOM: {e}'.split('\n')[0]))
            torch.cuda.empty_cache()
    ref = next((r for r in rows if r['name'] == reference and 'error' not in r), None) if reference else None
    if ref is not None:
        for r in rows:
            if 'error' not in r:
                r['train_ratio'] = r['train_ms'] / ref['train_ms']
                r['infer_ratio'] = r['infer_ms'] / ref['infer_ms']
                r['mem_ratio'] = r['train_peak_gib'] / ref['train_peak_gib'] if ref['train_peak_gib'] else None
    return dict(kind='model', env=environment(dev), compile_backbone=compile_backbone, batch=batch,
                height=height, width=width, boxes=boxes,
                precision=precision, warmup=warmup, repeats=repeats, reference=reference if ref else None,
                rows=rows)
