"""Speed and memory of whole mmdet / mmseg models from their configs: random weights, synthetic batches.

A training iteration is what mmengine's runner runs: the loss forward under the config's ``optim_wrapper``, as
mmengine builds it (its constructor's parameter groups, its optimizer, gradient clipping and accumulation;
``AmpOptimWrapper`` for fp16 / bf16), the backward and the wrapper's step; inference is ``mode='predict'``.
Timing and peak memory as in :mod:`fan_mm.benchmarks.timing`. All configs of a run are measured in one
process, so that their ratios are not skewed by the state of the machine.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from fan_mm.utils.compile_stats import CompileStats
from fan_mm.utils.environment import collect_environment
from .phases import NO_CLOCK, measure_phases
from .precision import autocast, check_precision, prepare_device
from .profiling import profile_steps
from .timing import time_fn

# --compile-backbone of benchmark_model.py: torch.compile options for every block of a model's backbone
COMPILE_BACKBONE = {None: None, 'default': dict(dynamic=False),
                    'cudagraph': dict(dynamic=False, mode='reduce-overhead')}


def build_model_from_config(config, cfg_options: Optional[dict] = None, eager: bool = False,
                            whole_backbone: bool = False, triton_depthwise: bool = False):
    """``(model, scope)``: the mmdet / mmseg model of ``config`` (a path, ``mmdet::...`` or a loaded ``Config``)
    with random weights, built by :func:`fan_mm.models.build_from_config` and initialised as training starts. ``eager``: without
    the backbone's ``compile_blocks`` (the fast path the fan_mm configs turn on for GPUs). ``whole_backbone``:
    its ``compile_blocks`` with ``scope='backbone'`` (the whole backbone as one graph, not block by block).
    ``triton_depthwise``: its ``compile_blocks`` with ``depthwise='triton'`` (the depthwise convs on fan_mm's
    Triton kernels), the switch a config run would use."""
    from mmengine.logging import MMLogger

    from fan_mm.models.builder import build_from_config, config_scope, disable_backbone_compile, load_config
    cfg = load_config(config, cfg_options)
    if eager and triton_depthwise:
        raise ValueError(f'{config}: the Triton depthwise kernels run where the backbone compiles, not eagerly')
    if eager:
        disable_backbone_compile(cfg)
    elif whole_backbone or triton_depthwise:
        backbone = cfg.model.backbone
        compile_blocks = backbone.get('compile_blocks', False)
        if compile_blocks is False:
            what = 'compile whole' if whole_backbone else "set depthwise='triton' in"
            raise ValueError(f'{config}: its backbone ({backbone.get("type")}) has no compile_blocks to {what} '
                             f'(+whole and +triton are for fan_mm backbones with the fast path on)')
        compile_blocks = dict({} if compile_blocks is True else compile_blocks)
        if whole_backbone:
            compile_blocks['scope'] = 'backbone'
        if triton_depthwise:
            compile_blocks['depthwise'] = 'triton'
        backbone['compile_blocks'] = compile_blocks
    model = build_from_config(cfg, pretrained=False)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model, config_scope(cfg)


# NAME+TAG entries of benchmark_model.py --configs: how the optimizer of a config is changed
OPTIMIZER_TAGS = ('per_param', 'merged')

# the phase of the wrapper's step: AmpOptimWrapper unscales for clipping, clips, steps through the gradient scaler
# (whose check for infinities waits for the backward) and updates the scale
OPTIMIZER_STEP_PHASE = "optimizer step (the config's optim_wrapper)"

# --precision of a benchmark -> the AmpOptimWrapper dtype its training iteration runs under (fp32: OptimWrapper)
AMP_DTYPES = {'fp16': 'float16', 'bf16': 'bfloat16'}


def build_config_optim_wrapper(config, model: nn.Module, precision: str = 'fp32',
                               cfg_options: Optional[dict] = None, variant: Optional[str] = None):
    """mmengine's optimizer wrapper that ``config``'s ``optim_wrapper`` builds for ``model`` (a path,
    ``mmdet::...`` or a loaded ``Config``), as the runner builds it, at the benchmark's ``precision``: its
    constructor's parameter groups, its optimizer, its ``clip_grad`` and ``accumulative_counts``. The
    precision decides the wrapper's type: ``'fp32'`` an ``OptimWrapper``, ``'fp16'`` / ``'bf16'`` an
    ``AmpOptimWrapper`` of that dtype (the config's ``loss_scale`` where it sets one, else dynamic), whatever
    the config says, so that one run can time a config in several precisions. mmengine's AmpOptimWrapper
    runs on accelerators only: on a CPU the precision must be fp32.

    ``variant``: ``'per_param'``, mmengine's layout of one parameter group per parameter with torch's
    default implementation (foreach on a GPU), as fan_mm's configs ran before their groups were merged;
    ``'merged'``, the config's groups merged by ``NoDecayOptimWrapperConstructor`` (its decay rules added
    only where the config already uses it) and the fused implementation, as fan_mm's configs run now."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    import fan_mm.engine  # noqa: F401  (registers NoDecayOptimWrapperConstructor for configs that do not import it)
    from fan_mm.models.builder import config_scope, load_config
    check_precision(precision)
    if variant not in (None,) + OPTIMIZER_TAGS:
        raise ValueError(f'optimizer variant {variant!r}: use one of {list(OPTIMIZER_TAGS)}')
    param = next(model.parameters(), None)
    if precision in AMP_DTYPES and (param is None or param.device.type == 'cpu'):
        raise ValueError(f'precision={precision!r} on the CPU: mmengine\'s AmpOptimWrapper runs on GPUs only; '
                         f'time CPU runs in fp32')
    cfg = load_config(config, cfg_options)
    wrapper = dict(cfg.optim_wrapper)
    if precision in AMP_DTYPES:
        wrapper.update(type='AmpOptimWrapper', dtype=AMP_DTYPES[precision])
    else:
        wrapper['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            wrapper.pop(key, None)
    wrapper['optimizer'] = optimizer = dict(wrapper['optimizer'])
    paramwise = dict(wrapper.get('paramwise_cfg') or {})
    ours = wrapper.get('constructor') == 'NoDecayOptimWrapperConstructor'
    if variant == 'per_param':
        optimizer.pop('fused', None)
        if ours:
            paramwise['merge_groups'] = False
    elif variant == 'merged':
        optimizer['fused'] = True
        if not ours:  # the config's own rules, groups merged
            wrapper['constructor'] = 'NoDecayOptimWrapperConstructor'
            paramwise.update(no_decay_norms=False, no_decay_keys=())
        paramwise['merge_groups'] = True
    if variant is not None or paramwise:
        wrapper['paramwise_cfg'] = paramwise
    with DefaultScope.overwrite_default_scope(config_scope(cfg)):
        return build_optim_wrapper(model, wrapper)


def describe_optimizer(opt, accumulative_counts: int = 1) -> str:
    """``'AdamW, 2 groups, fused'``: the optimizer's class, number of parameter groups and implementation; for
    an mmengine wrapper also what it adds (``'AmpOptimWrapper float16: AdamW, 2 groups, fused, clip_grad'``),
    with ``accumulative_counts`` as the wrapper's config sets it (the wrapper keeps it private)."""
    wrapper = None
    if hasattr(opt, 'optimizer') and not isinstance(opt, torch.optim.Optimizer):
        wrapper, opt = opt, opt.optimizer
    first = opt.param_groups[0]
    impl = ('fused' if first.get('fused') else 'foreach' if first.get('foreach') else
            'for-loop' if first.get('foreach') is False else "torch's default")
    text = f'{type(opt).__name__}, {len(opt.param_groups)} groups, {impl}'
    if wrapper is None:
        return text
    extras = ['clip_grad'] * bool(wrapper.clip_grad_kwargs)
    if accumulative_counts > 1:
        extras.append(f'accumulating {accumulative_counts}')
    dtype = getattr(wrapper, 'cast_dtype', None)
    kind = type(wrapper).__name__ + (f' {str(dtype).replace("torch.", "")}' if dtype is not None else '')
    return f'{kind}: ' + ', '.join([text] + extras)


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
                cfg_options: Optional[dict] = None, compile_backbone: Optional[str] = None,
                eager: bool = False, profile: bool = False, whole_backbone: bool = False,
                phases: bool = False, optimizer: Optional[str] = None, triton_depthwise: bool = False) -> Dict:
    """One row: training iteration (loss forward, backward and step of the config's ``optim_wrapper`` as
    mmengine builds it, :func:`build_config_optim_wrapper`) and inference (``mode='predict'``) of the model of
    ``config``.

    The backbone runs as the config says (fan_mm's configs compile its blocks on a GPU), eagerly with
    ``eager=True``, compiled as one graph with ``whole_backbone=True``. ``compile_backbone`` compiles the
    backbones that the config leaves eager (mmdet's Swin, say), so that peers can be compared like for like:
    ``'default'`` (``torch.compile`` of every block, static shapes) or ``'cudagraph'`` (the same with
    ``mode='reduce-overhead'``: CUDA graphs). The row's
    ``backbone_compile`` says what ran; the warm-up times include compiling, and ``train_compile`` /
    ``infer_compile`` say what was compiled in them (``fan_mm.utils.compile_stats``). ``profile``: the row's
    ``profile`` holds ``fan_mm.benchmarks.profiling.profile_steps`` of three more training iterations.
    ``phases``: the row's ``phases`` holds ``fan_mm.benchmarks.phases.measure_phases`` of five more: the
    host's wall time and the GPU synchronisations by part of the model and of the step. ``optimizer``: a
    variant of the config's optimizer (:func:`build_config_optim_wrapper`). ``triton_depthwise``: the
    backbone's ``compile_blocks`` with ``depthwise='triton'`` (CUDA only)."""
    if compile_backbone not in COMPILE_BACKBONE:
        raise ValueError(f'compile_backbone={compile_backbone!r}: use one of {list(COMPILE_BACKBONE)}')
    from fan_mm.models.builder import load_config
    torch.manual_seed(0)
    cfg = load_config(config, cfg_options)  # once: the model and the optimizer are built from it
    if triton_depthwise and device.type != 'cuda':  # on a CPU the blocks stay eager: nothing would be routed
        raise ValueError(f'{name or config}: the Triton depthwise kernels run on CUDA devices only, '
                         f'not on {device.type}')
    model, scope = build_model_from_config(cfg, eager=eager, whole_backbone=whole_backbone,
                                           triton_depthwise=triton_depthwise)
    model = model.to(device)
    by_config = getattr(model.backbone, 'compile_blocks', False)
    if by_config is not False:  # {} and True compile too
        on_cpu = isinstance(by_config, dict) and by_config.get('on_cpu')
        backbone_compile = f'config: {by_config}' if device.type == 'cuda' or on_cpu else 'eager (CPU)'
    elif compile_backbone and not eager:  # in place: parameter names stay as they are
        from fan_mm.layers import compile_trunk_blocks
        opts = COMPILE_BACKBONE[compile_backbone]
        if not compile_trunk_blocks(model.backbone, **opts):  # blockwise where it has blocks
            model.backbone.compile(**opts)
        backbone_compile = f'{compile_backbone}: {opts}'
    else:
        backbone_compile = 'eager'
    inputs, samples = synthetic_batch(scope, batch, height, width, boxes, _num_classes(model, scope), device)
    wrapper = build_config_optim_wrapper(cfg, model, precision, variant=optimizer)
    optimizer_text = describe_optimizer(wrapper, cfg.optim_wrapper.get('accumulative_counts', 1))
    row = dict(name=name or config, config=config, scope=scope, backbone_compile=backbone_compile,
               params_m=sum(p.numel() for p in model.parameters()) / 1e6, optimizer=optimizer_text)
    model.train()

    def train_iter(clock=NO_CLOCK):
        # what mmengine's BaseModel.train_step and OptimWrapper.update_params run, in phases
        with clock.phase('loss forward, outside the parts'), wrapper.optim_context(model):
            losses = model(inputs, samples, mode='loss')
        with clock.phase('parse_losses'):
            loss, _ = model.parse_losses(losses)
        with clock.phase('backward'):
            wrapper.backward(wrapper.scale_loss(loss))
        if wrapper.should_update():
            with clock.phase(OPTIMIZER_STEP_PHASE):
                wrapper.step()
            with clock.phase('zero_grad'):
                wrapper.zero_grad(set_to_none=True)
    with CompileStats() as compiled:
        r = time_fn(train_iter, device, warmup, repeats)
    row.update(train_s_iter=r['ms'] / 1e3, train_ms=r['ms'], train_peak_gib=r['peak_gib'],
               train_reserved_gib=r['reserved_gib'], train_warmup_s=r['warmup_s'], train_compile=compiled.result)
    if profile:
        row['profile'] = profile_steps(train_iter, device, row['name'], warmup=1)
    if phases:
        row['phases'] = measure_phases(train_iter, model, device, row['name'])
    wrapper.zero_grad(set_to_none=True)
    model.eval()

    def infer():
        with torch.no_grad(), autocast(device, precision):
            return model(inputs, [s.clone() for s in samples], mode='predict')
    with CompileStats() as compiled:
        r = time_fn(infer, device, warmup, repeats)
    row.update(infer_ms=r['ms'], infer_img_s=batch / (r['ms'] / 1e3), infer_peak_gib=r['peak_gib'],
               infer_reserved_gib=r['reserved_gib'], infer_warmup_s=r['warmup_s'], infer_compile=compiled.result)
    del model, wrapper
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    return row


def run_model_benchmark(configs: Sequence[Tuple[str, str]], batch: int, height: int, width: int, boxes: int,
                        precision: str, device: str, warmup: int, repeats: int,
                        reference: Optional[str] = None, cfg_options: Optional[dict] = None,
                        compile_backbone: Optional[str] = None, eager: bool = False,
                        profile: Sequence[str] = (), phases: Sequence[str] = ()) -> Dict:
    """``configs``: (name, config) pairs, all measured in this process; ratios against ``reference`` (a name).
    Tags after the name, ``NAME+TAG``: ``+eager`` runs that config without its backbone's ``compile_blocks``
    (so that one run can hold a config both ways), ``+whole`` with ``compile_blocks`` of scope ``'backbone'``
    (the whole backbone as one graph), ``+per_param`` / ``+merged`` with that variant of its optimizer
    (:func:`build_config_optim_wrapper`), ``+triton`` with ``compile_blocks`` holding ``depthwise='triton'``
    (the depthwise convs on fan_mm's Triton kernels); ``eager`` runs all eagerly. The training iterations of
    the names in ``profile`` are profiled after they are timed (the result's ``profiles``), those in
    ``phases`` are timed part by part on the host (the result's ``phases``)."""
    check_precision(precision)
    for flag, names in (('--profile', profile), ('--phases', phases)):
        unknown = sorted(set(names) - {name for name, _ in configs})
        if unknown:
            raise ValueError(f'{flag} {unknown}: not among the --configs names {[name for name, _ in configs]}')
    tags = {name: name.split('+')[1:] for name, _ in configs}
    for name, found in tags.items():
        unknown = sorted(set(found) - {'eager', 'whole', 'triton'} - set(OPTIMIZER_TAGS))
        if (unknown or 'eager' in found and ('whole' in found or 'triton' in found)
                or len(set(found) & set(OPTIMIZER_TAGS)) > 1):
            raise ValueError(f'--configs name {name!r}: tags +{" +".join(found)}; use at most one of +eager / '
                             f'+whole, +eager / +triton and one of +{" +".join(OPTIMIZER_TAGS)}')
    dev = prepare_device(device)
    rows = []
    for name, config in configs:
        variant = next((t for t in tags[name] if t in OPTIMIZER_TAGS), None)
        try:
            rows.append(bench_model(config, batch, height, width, boxes, precision, dev, warmup, repeats,
                                    name=name, cfg_options=cfg_options, compile_backbone=compile_backbone,
                                    eager=eager or 'eager' in tags[name], profile=name in profile,
                                    whole_backbone='whole' in tags[name], phases=name in phases,
                                    optimizer=variant, triton_depthwise='triton' in tags[name]))
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
    out = dict(kind='model', env=collect_environment(device=str(dev)), compile_backbone=compile_backbone,
               eager=eager, batch=batch, height=height, width=width, boxes=boxes,
               precision=precision, warmup=warmup, repeats=repeats, reference=reference if ref else None,
               rows=rows)
    for key, many in (('profile', 'profiles'), ('phases', 'phases')):
        found = [r.pop(key) for r in rows if key in r]
        if found:
            out[many] = found
    return out
