"""Regional ``torch.compile`` of a backbone: every block on its own, CUDA graphs made safe for returned maps."""
from typing import Mapping

import torch
from torch import nn

# Dynamo keeps at most ``recompile_limit`` (default 8) compiled versions of one function and runs it eagerly
# after that, with only a warning. One ``forward`` serves every block of a class, and its versions multiply:
# FAN-Hybrid's ConvNeXt blocks alone see three (channels, input dtype) pairs under autocast, each with
# gradients on and off (training, validation) and, with several input sizes (multi-scale detection), static
# and dynamic shapes, which is more than 8. The limit is raised to this (never lowered).
MIN_RECOMPILE_LIMIT = 64


def compile_trunk_blocks(model: nn.Module, **compile_options) -> int:
    """``torch.compile`` in place every block of ``model``: each child of a ``ModuleList`` / ``Sequential``
    whose name ends in ``blocks`` (FAN's ``blocks``, ``cls_attn_blocks`` and ConvNeXt stem blocks, the
    ViT blocks of LV-ViT, the blocks of every Swin stage, timm's Swin / ConvNeXt). Returns how many.

    Regional compilation rather than one graph of the whole backbone: blocks of one class share the
    compiled code, so compiling takes seconds, a graph break in the glue between blocks (feature taps,
    checkpointing, pyramids) costs nothing, and new input sizes recompile only the small block graphs.
    Parameter names do not change (``nn.Module.compile``), so checkpoints load as before.

    With CUDA graphs (``mode='reduce-overhead'`` or ``'max-autotune'``) each block's outputs are cloned
    when gradients are off (validation, testing): CUDA-graph trees hand a graph's output memory back when
    the graph runs again, and the blocks of one class share theirs, so an output kept past the next
    block (a feature map the backbone returns) would be overwritten ("accessing tensor output of
    CUDAGraphs that has been overwritten"). In training autograd keeps them alive until the backward.

    The recompile limit is raised to ``MIN_RECOMPILE_LIMIT`` (see there).

    Dynamo's ``optimize_ddp`` is switched off: it splits a compiled graph again at DDP's gradient-bucket
    boundaries, which is for compiling a whole model; blocks compiled one by one already give DDP its
    overlap, since each block's backward runs (and its gradients reach DDP's hooks) on its own, and the
    split fails on graphs with dynamic shapes ("'float' object has no attribute 'meta'").
    """
    import torch._dynamo.config as dynamo_config
    _raise_recompile_limit(MIN_RECOMPILE_LIMIT)
    dynamo_config.optimize_ddp = False
    n = 0
    for name, module in model.named_modules():
        if name.rsplit('.', 1)[-1].endswith('blocks') and isinstance(module, (nn.ModuleList, nn.Sequential)):
            for block in module:
                if uses_cuda_graphs(compile_options):
                    _compile_with_inference_clones(block, compile_options)
                else:
                    block.compile(**compile_options)
                n += 1
    return n


def _raise_recompile_limit(limit: int) -> None:
    import torch._dynamo.config as dynamo_config
    if dynamo_config.recompile_limit < limit:
        dynamo_config.recompile_limit = limit


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


def _clone_tensors(out):
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, (tuple, list)):
        return type(out)(_clone_tensors(o) for o in out)
    return out


def _compile_with_inference_clones(block: nn.Module, compile_options: Mapping) -> None:
    """``block.forward`` compiled, its outputs cloned when gradients are off (see compile_trunk_blocks)."""
    compiled_forward = torch.compile(block.forward, **compile_options)

    def forward(*args, **kwargs):
        out = compiled_forward(*args, **kwargs)
        if torch.is_grad_enabled():
            return out
        return _clone_tensors(out)
    block.forward = forward  # an instance attribute: no new submodule, parameter names unchanged
    block.compiled_for_cuda_graphs = True
