"""``torch.compile`` of a backbone, regional (every block on its own, the default) or whole (one graph of its
forward), with CUDA graphs made safe for returned maps."""
import os
import warnings
from typing import Callable, Mapping, Optional

import torch
from torch import nn

# Dynamo keeps at most ``recompile_limit`` (default 8) compiled versions of one function and runs it eagerly
# after that, with only a warning. One ``forward`` serves every block of a class, and its versions multiply:
# FAN-Hybrid's ConvNeXt blocks alone see two widths, each with gradients on and off (training, validation)
# and, with several input sizes (multi-scale detection), static and dynamic shapes; models whose first block
# of a stage gets another input dtype than the rest (``fan_mm.layers.float32_stream`` spares fan_mm's
# FAN-Hybrid that) double it. More than 8 is easily reached. The limit is raised to this (never lowered),
# unless the environment sets DYNAMO_CACHE_SIZE_LIMIT (mmdet's switch for it).
MIN_RECOMPILE_LIMIT = 64


def compile_trunk_blocks(model: nn.Module, cuda_only: bool = False, **compile_options) -> int:
    """``torch.compile`` in place every block of ``model``: each child of a ``ModuleList`` / ``Sequential``
    whose name ends in ``blocks`` (FAN's ``blocks``, ``cls_attn_blocks`` and ConvNeXt stem blocks, the
    ViT blocks of LV-ViT, the blocks of every Swin stage, timm's Swin / ConvNeXt). Returns how many.

    Regional compilation rather than one graph of the whole backbone: blocks of one class share the
    compiled code, so compiling takes seconds, a graph break in the glue between blocks (feature taps,
    checkpointing, pyramids) costs nothing, and new input sizes recompile only the small block graphs.
    Parameter names do not change, so checkpoints load as before.

    Each block's ``_compiled_call_impl`` (what ``nn.Module.compile`` sets and ``nn.Module.__call__`` runs)
    becomes a ``CompiledCall``; like ``nn.Module.compile``'s, it is left out when a block is pickled
    or deep-copied, so copies (an EMA model, ``torch.save(model)``) run eagerly until compiled again.
    ``cuda_only=True``: calls whose input is not on a CUDA device run the eager forward (a model moved
    back to the CPU does not compile again for the CPU).

    With CUDA graphs (``mode='reduce-overhead'`` or ``'max-autotune'``) each block's outputs are cloned
    when gradients are off (validation, testing) and no inference step is open (``begin_inference_step``,
    which fan_mm's backbones open for each forward): CUDA-graph trees then start a new generation at every
    block and hand the previous one's output memory back, so an output kept past the next block (a
    feature map the backbone returns) would be overwritten ("accessing tensor output of CUDAGraphs that
    has been overwritten"). In training autograd keeps them alive until the backward.

    Dynamo is set up as ``configure_dynamo`` says (recompile limit, float constants, no DDP graph split).
    """
    configure_dynamo()
    n = 0
    for name, module in model.named_modules():
        if name.rsplit('.', 1)[-1].endswith('blocks') and isinstance(module, (nn.ModuleList, nn.Sequential)):
            for block in module:
                block._compiled_call_impl = CompiledCall(block._call_impl, compile_options, cuda_only)
                n += 1
    return n


def compile_whole_forward(module: nn.Module, cuda_only: bool = False, **compile_options) -> 'CompiledCall':
    """The whole ``forward`` of ``module`` through ``torch.compile``, as one graph (the backbones'
    ``compile_blocks=dict(scope='backbone')``); its blocks are not compiled on their own. Returns the
    ``CompiledCall`` for the module to call in place of its forward (module hooks stay outside the graph,
    as for the blocks); holding it is the caller's job, and so is leaving it out of copies, which would
    otherwise run the original's forward and weights (``DenseBackbone`` does both).

    One graph lets inductor fuse across block boundaries (a residual add with the next block's norm) and,
    with CUDA graphs, replays the whole forward and the whole backward each as one graph, so no host work
    sits between blocks: worth it where the host cannot keep up with the block replays. The costs: a longer
    compile (the graph is the sum of the blocks, not one per block kind), one graph per input size (fine
    for the fixed crops of segmentation, multiplied by detection's changing sizes), and under DDP the
    backbone's gradients reach the gradient buckets only when its whole backward is done.
    Dynamo is set up as ``configure_dynamo`` says.
    """
    configure_dynamo()
    return CompiledCall(type(module).forward.__get__(module), compile_options, cuda_only)


def configure_dynamo() -> None:
    """Dynamo settings the compiled backbones need (process-wide; each only ever set one way).

    The recompile limit is raised to ``MIN_RECOMPILE_LIMIT`` (see there).

    Dynamo's ``specialize_float`` is switched on: Python floats are traced as constants. With
    ``dynamic=True`` (the detection configs) dynamo otherwise makes every float attribute of a module
    symbolic (LayerNorm ``eps``, dropout ``p``, attention scales), fails to turn them into tensors,
    and traces each block graph a second time with them specialised, a first attempt that AOTAutograd's
    cache never hits, so every process paid for it again. These floats are the model's constants, not
    inputs that vary between calls.

    Dynamo's ``optimize_ddp`` is switched off: it splits a compiled graph again at DDP's gradient-bucket
    boundaries, which is for compiling a whole model; blocks compiled one by one already give DDP its
    overlap, since each block's backward runs (and its gradients reach DDP's hooks) on its own, and the
    split fails on graphs with dynamic shapes ("'float' object has no attribute 'meta'").
    """
    import torch._dynamo.config as dynamo_config
    _raise_recompile_limit(MIN_RECOMPILE_LIMIT)
    dynamo_config.optimize_ddp = False
    dynamo_config.specialize_float = True


def _raise_recompile_limit(limit: int) -> None:
    import torch._dynamo.config as dynamo_config
    if 'DYNAMO_CACHE_SIZE_LIMIT' in os.environ:
        return  # the user's own limit, which mmdet's tools (and fan_mm's, for mmdet configs) apply
    if dynamo_config.recompile_limit < limit:
        dynamo_config.recompile_limit = limit


def persistent_compile_cache() -> str:
    """Keep inductor's compiled graphs and Triton kernels across jobs; returns the folder.

    torch's default cache sits in the temporary folder (``/tmp/torchinductor_<user>``), which batch
    schedulers often give each job afresh, so every job would pay the cold compile (one to two minutes for a
    Mask R-CNN). Unless ``TORCHINDUCTOR_CACHE_DIR`` is set (torch's own switch, always honoured), the cache
    goes to ``~/.cache/fan_mm/torchinductor``. Entries are keyed by the graph, torch / Triton versions and
    device, and written atomically, so jobs on several nodes of a shared home can use one folder. Where
    that folder cannot be made or written (a read-only home), torch's default stays, with a warning.
    """
    if not os.environ.get('TORCHINDUCTOR_CACHE_DIR'):
        folder = os.path.join(os.path.expanduser('~'), '.cache', 'fan_mm', 'torchinductor')
        try:
            os.makedirs(folder, exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            from torch._inductor.runtime.cache_dir_utils import default_cache_dir
            warnings.warn(f'cannot write the compile cache folder {folder}; using torch\'s default '
                          f'{default_cache_dir()} (set TORCHINDUCTOR_CACHE_DIR to choose another)')
            return default_cache_dir()
        os.environ['TORCHINDUCTOR_CACHE_DIR'] = folder
    return os.environ['TORCHINDUCTOR_CACHE_DIR']


def uses_cuda_graphs(compile_options: Mapping) -> bool:
    """Whether ``torch.compile(**compile_options)`` records CUDA graphs."""
    return (compile_options.get('mode') in ('reduce-overhead', 'max-autotune')
            or bool((compile_options.get('options') or {}).get('triton.cudagraphs')))


def without_cuda_graphs(compile_options: Mapping) -> dict:
    """The same options without CUDA graphs (``reduce-overhead`` -> default mode, ``max-autotune`` ->
    ``max-autotune-no-cudagraphs``, ``triton.cudagraphs`` off)."""
    opts = dict(compile_options)
    if opts.get('mode') == 'reduce-overhead':
        opts.pop('mode')
    elif opts.get('mode') == 'max-autotune':
        opts['mode'] = 'max-autotune-no-cudagraphs'
    if (opts.get('options') or {}).get('triton.cudagraphs'):
        opts['options'] = dict(opts['options'], **{'triton.cudagraphs': False})
    return opts


def clone_tensors(out):
    """``out`` with each tensor in it (alone, or in nested tuples / lists) cloned."""
    def clone(o):
        if isinstance(o, torch.Tensor):
            return o.clone()
        if isinstance(o, (tuple, list)):
            return type(o)(clone(e) for e in o)
        return o
    return clone(out)


def _first_tensor(args, kwargs) -> Optional[torch.Tensor]:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
    return next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)


class CompiledCall:
    """``eager`` called through ``torch.compile``: a block's ``nn.Module._call_impl`` (hooks included, as
    ``nn.Module.compile`` does; see ``compile_trunk_blocks``) or a whole module's forward
    (``compile_whole_forward``). Outputs are cloned when CUDA graphs are recorded, gradients are off and no
    inference step is open; with ``cuda_only`` inputs off CUDA take the eager call.

    The clone happens here, outside the compiled code: a clone inside it would land in the CUDA graph's
    own memory pool again."""

    def __init__(self, eager: Callable, compile_options: Mapping, cuda_only: bool = False):
        self.eager = eager
        self.compiled = torch.compile(self.eager, **compile_options)
        self.clones_without_grad = uses_cuda_graphs(compile_options)
        self.cuda_only = cuda_only

    def __call__(self, *args, **kwargs):
        if self.cuda_only:
            x = _first_tensor(args, kwargs)
            if x is None or x.device.type != 'cuda':
                return self.eager(*args, **kwargs)
        out = self.compiled(*args, **kwargs)
        if self.clones_without_grad and not torch.is_grad_enabled() and not _InferenceStep.open:
            return clone_tensors(out)
        return out


class _InferenceStep:
    """State of ``begin_inference_step`` / ``end_inference_step`` (process-wide, as CUDA-graph trees' own)."""
    open = 0  # inference steps now open (a backbone forward between the two calls)
    # generation numbers of our own for cudagraph trees' step counter: negative like those of
    # torch.compiler.cudagraph_mark_step_begin, far below any a program reaches
    serial = -(1 << 40)


def begin_inference_step(device: torch.device) -> Optional[int]:
    """Make one gradient-free forward of compiled blocks one CUDA-graph generation; ``end_inference_step``
    closes it. Returns what that call needs, or None where no step was opened.

    Without a step, CUDA-graph trees start a new generation at every compiled call made with no backward
    pending, i.e. at every block in inference, and hand the previous block's output memory back; so
    ``CompiledCall`` clones each block's output, and the next graph copies that clone into its own
    input buffer: two copies of every map between blocks (8% of a FAN-S-Hybrid inference on an H200).
    Within one generation a block's output is the next block's input as it is, and only the maps the
    backbone returns need a clone, once, at the end (``DenseBackbone`` does both).

    This also makes inference independent of how the program marks steps: once anything in the process
    has called ``torch.compiler.cudagraph_mark_step_begin`` (a training loop, a benchmark), trees start
    generations only at marked steps, and unmarked inference calls would extend one path forever,
    recording every block again at every call (70x slower, seen on an H200 with torch 2.11).

    No step is opened inside another one, while a forward with a pending backward runs on ``device`` (a
    teacher model's no-grad forward inside a training step must not end the student's generation), or
    where torch lacks the step counter this relies on (then blocks clone their outputs as before).
    """
    from torch._inductor import cudagraph_trees
    box = getattr(cudagraph_trees, 'MarkStepBox', None)
    if _InferenceStep.open or box is None or not hasattr(box, 'mark_step_counter'):
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    manager = getattr(cudagraph_trees.get_container(index), 'tree_manager', None)
    if manager is not None and getattr(manager, 'running_forwards_with_pending_backwards', True):
        return None
    previous = box.mark_step_counter
    if previous == 0:
        # torch's automatic generations (nobody marks steps): a marked step of a number never used
        # before, and automatic generations again after the forward (end_inference_step)
        _InferenceStep.serial -= 1
        box.mark_step_counter = _InferenceStep.serial
    else:  # the program marks steps: one more
        torch.compiler.cudagraph_mark_step_begin()
    _InferenceStep.open += 1
    return previous


def end_inference_step(token: Optional[int]) -> None:
    """Close the step ``begin_inference_step`` returned ``token`` for (None: nothing was opened)."""
    if token is None:
        return
    _InferenceStep.open -= 1
    if token == 0:
        from torch._inductor.cudagraph_trees import MarkStepBox
        MarkStepBox.mark_step_counter = 0
