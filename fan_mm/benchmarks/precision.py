"""Precision and device settings shared by the backbone and model benchmarks."""
from contextlib import nullcontext

import torch

# --precision: the autocast dtype (fp32: no autocast)
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f'precision={precision!r}: use one of {list(PRECISIONS)}')


def autocast(device: torch.device, precision: str):
    """``torch.autocast`` to the dtype of ``precision`` on ``device``'s type; no autocast for fp32."""
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def prepare_device(device: str, cudnn_benchmark: bool = False) -> torch.device:
    """The torch device of ``device``, with TF32 matmuls and convolutions on as timm / mmengine training has
    them (and ``cudnn.benchmark`` if asked); a clear error where CUDA is asked for and missing."""
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError(f'device={device!r} but CUDA is not available')
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    return dev
