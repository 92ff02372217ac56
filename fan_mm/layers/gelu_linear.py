"""``linear(gelu(h))`` that recomputes the GELU in the backward instead of keeping it."""
from typing import Optional

import torch
import torch.nn.functional as F

from .autocast import autocast_dtype


class GeluLinear(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` that keeps only ``h`` for the backward and recomputes ``gelu(h)``
    there (one elementwise pass) instead of keeping it.

    Meant for MLPs whose hidden GELU output is the largest tensor a backbone would keep, such as the 4C-wide
    ConvNeXt MLPs of FAN-Hybrid's stem at strides 4 and 8. The same kernels as ``F.linear`` under autocast:
    the weights are cast to the compute dtype, the weight and bias gradients are computed in it and returned
    in the parameters' dtype. Not ``torch.utils.checkpoint``: it would recompute the fc2 matmul as well (or
    need a selective policy), and adds hooks to every call of a step that is already bound by CPU-side
    launches.

    Call through ``gelu_linear`` (which leaves compiled code to inductor), or as
    ``GeluLinear.apply(h, weight, bias, approximate)``.
    """

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], approximate: str):
        dtype = autocast_dtype(h.device.type) or h.dtype
        h, w = h.to(dtype), weight.to(dtype)
        b = bias.to(dtype) if bias is not None else None
        ctx.save_for_backward(h, w)
        ctx.approximate = approximate
        ctx.param_dtypes = (weight.dtype, bias.dtype if bias is not None else None)
        with torch.autocast(h.device.type, enabled=False):
            return F.linear(F.gelu(h, approximate=approximate), w, b)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        h, w = ctx.saved_tensors
        grad_out = grad_out.to(w.dtype)
        need_h, need_w, need_b, _ = ctx.needs_input_grad
        grad_h = grad_w = grad_b = None
        if need_h:
            grad_h = torch.ops.aten.gelu_backward(grad_out @ w, h, approximate=ctx.approximate)
        if need_w:
            act = F.gelu(h, approximate=ctx.approximate)
            grad_w = (grad_out.reshape(-1, grad_out.shape[-1]).t() @ act.reshape(-1, act.shape[-1]))
            grad_w = grad_w.to(ctx.param_dtypes[0])
        if need_b:
            grad_b = grad_out.reshape(-1, grad_out.shape[-1]).sum(0).to(ctx.param_dtypes[1])
        return grad_h, grad_w, grad_b, None


def gelu_linear(h: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                approximate: str = 'none') -> torch.Tensor:
    """``F.linear(F.gelu(h), weight, bias)``; run eagerly, it keeps only ``h`` for the backward (``GeluLinear``).

    Inside ``torch.compile`` it is the plain computation. There AOTAutograd traces a custom function's
    forward and backward like any other code and its partitioner chooses again what the backward keeps (for
    this MLP: ``h`` and the GELU output, with the custom function as with plain ops), so ``GeluLinear`` saves
    nothing in compiled code; but a graph holding one cannot enter AOTAutograd's cache, and every process
    traced the ConvNeXt blocks again (seconds of warm-up each run).
    """
    if torch.compiler.is_compiling():
        return F.linear(F.gelu(h, approximate=approximate), weight, bias)
    return GeluLinear.apply(h, weight, bias, approximate)
