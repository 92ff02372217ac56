"""Autocast queries that stay traceable under ``torch.compile``."""
from typing import Optional

import torch


def autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype if autocast is on for ``device_type``, else None."""
    # The availability check (False for e.g. 'meta', where is_autocast_enabled raises) is skipped while
    # compiling: dynamo cannot trace it and would break every compiled block into pieces at this call.
    if not torch.compiler.is_compiling() and not torch.amp.is_autocast_available(device_type):
        return None
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def cast_for_linears(x: torch.Tensor) -> torch.Tensor:
    """Under autocast, ``x`` (a LayerNorm output, float32 there) cast once to the autocast dtype.

    Every linear layer that reads a float32 tensor under autocast casts it again; a norm output feeding
    two linears (q and kv, or q and fc1) would be cast twice, and its two low-precision copies saved for
    the backward. The linears compute exactly what they would otherwise. Outside autocast: ``x``.
    """
    dtype = autocast_dtype(x.device.type)
    return x if dtype is None else x.to(dtype)


def float32_stream(x: torch.Tensor) -> torch.Tensor:
    """The first tensor of a residual stream, in float32 under autocast (as every later one is). Outside
    autocast, or already float32: ``x``.

    Blocks of the form ``x + gamma * f(x)`` return float32 under autocast whatever their input (the float32
    LayerScale promotes the sum), so only the first block of a stage would see the autocast dtype, from the
    conv before it. Compiled, that block needs graphs of its own (dynamo guards on the input dtype): one more
    graph per stage and grad mode to compile at every warm-up. On a GPU the forward values do not change: a
    bfloat16 or float16 tensor converts to float32 exactly, the block's convs and linears cast it back to the
    autocast dtype (the same numbers), CUDA autocast runs LayerNorm in float32 for any input, and the
    residual sum was float32 already. (CPU autocast runs LayerNorm in the input's dtype, so there the first
    block's norm now works in float32 like every later block's.) In the backward, the gradient of the
    stream's first tensor is summed in float32 over its consumers and rounded once, not summed in the
    autocast dtype.

    FAN-Swin's stages start from a linear (patch merging) too, but its attention residual has no LayerScale:
    there the first block's ``x + attention`` becomes a float32 sum instead of one rounded to the autocast
    dtype, and the last stage (plain MLP blocks, whose stream would otherwise stay in the autocast dtype
    throughout) runs in float32 like the others. Each stage's blocks then share their graphs (FAN-Swin-T: 8
    per grad mode, where the first blocks' own made 9).
    """
    if x.dtype in (torch.bfloat16, torch.float16) and autocast_dtype(x.device.type) is not None:
        return x.float()
    return x
