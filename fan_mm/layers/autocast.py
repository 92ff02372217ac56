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
